// Fuzz target: the event stream's Last-Event-ID handling and its framing
// (SseHub, plan_resume, format_sse_event). The input gives the kept range of
// an event log, a Last-Event-ID as a header and/or query parameter, how many
// live events follow, and a type and data to frame. What a subscriber
// receives is read back as a browser's EventSource would (WHATWG HTML 9.2.6)
// and must be: an optional stream.reset, then consecutive events ending at
// the newest, each as the log holds it; never a gap, a repeat, or an event
// forged by the bytes of another's data.
#include "common/log.h"
#include "fuzz_invariant.h"
#include "http/router.h"
#include "worker/sse_hub.h"

#include <algorithm>
#include <cstdint>
#include <fuzzer/FuzzedDataProvider.h>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <uv.h>
#include <vector>

using namespace posta;
using posta::fuzz::fail;
using posta::fuzz::require;

namespace {

// Events oldest..last are kept (none when oldest is 0), each with a type
// and data derived from its seq.
class FakeLog final : public EventLog {
public:
    int64_t oldest = 0;
    int64_t last = 0;

    static std::string type_of(int64_t seq) { return "test.event" + std::to_string(seq % 3); }
    static std::string data_of(int64_t seq) { return "{\"seq\":" + std::to_string(seq) + "}\nline two"; }

    Result<EventRange> event_range() override { return EventRange { oldest, last }; }
    Result<std::vector<StoredEvent>> events_after(int64_t after, int limit) override
    {
        std::vector<StoredEvent> out;
        if (oldest == 0)
            return out;
        for (int64_t seq = std::max(after + 1, oldest); seq <= last && static_cast<int>(out.size()) < limit; ++seq)
            out.push_back(StoredEvent { seq, type_of(seq), data_of(seq), 0 });
        return out;
    }
};

// The connection: takes the stream's head and bytes.
class Connection final : public ResponseSink, public StreamSink {
public:
    void send_response(Response response) override { refused = std::move(response); }
    std::shared_ptr<ResponseStream> start_stream(Response head) override
    {
        require(head.headers.get("Content-Type") == "text/event-stream", "the stream is not text/event-stream");
        auto out = std::make_shared<ResponseStream>(static_cast<StreamSink*>(this));
        stream = out;
        return out;
    }
    void stream_write(std::string bytes) override { received += bytes; }
    size_t stream_queued_bytes() const override { return 0; }
    void stream_close(Close, std::string_view) override
    {
        closed = true;
        if (auto s = stream.lock())
            s->detach();
    }

    std::optional<Response> refused;
    std::weak_ptr<ResponseStream> stream;
    std::string received;
    bool closed = false;
};

struct Event {
    std::string id;
    std::string type;
    std::string data;
};

// The event stream interpretation of WHATWG HTML 9.2.6, minus retry.
std::vector<Event> read_events(std::string_view stream)
{
    std::vector<Event> out;
    std::string id, type, data;
    bool have_data = false;
    while (!stream.empty()) {
        size_t end = stream.find_first_of("\r\n");
        if (end == std::string_view::npos)
            break; // an unterminated last line is never dispatched
        std::string_view line = stream.substr(0, end);
        stream.remove_prefix(end + (stream[end] == '\r' && end + 1 < stream.size() && stream[end + 1] == '\n' ? 2 : 1));
        if (line.empty()) {
            if (have_data) {
                if (!data.empty() && data.back() == '\n')
                    data.pop_back();
                out.push_back(Event { id, type, data });
            }
            type.clear();
            data.clear();
            have_data = false;
            continue;
        }
        if (line.front() == ':')
            continue;
        size_t colon = line.find(':');
        std::string_view field = line.substr(0, colon);
        std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        if (field == "event") {
            type = value;
        } else if (field == "data") {
            data += value;
            data += '\n';
            have_data = true;
        } else if (field == "id" && value.find('\0') == std::string_view::npos) {
            id = value;
        }
    }
    return out;
}

// One framed event reads back as exactly that event.
void check_framing(int64_t id, std::string const& type, std::string const& data)
{
    auto events = read_events(format_sse_event(id, type, data));
    require(events.size() == 1, "one framed event does not read back as exactly one event");
    std::string expected_type = type;
    for (char& c : expected_type) {
        if (c == '\r' || c == '\n')
            c = ' ';
    }
    std::string expected_data;
    for (size_t i = 0; i < data.size(); ++i) {
        if (data[i] == '\r') {
            expected_data += '\n';
            if (i + 1 < data.size() && data[i + 1] == '\n')
                ++i;
        } else {
            expected_data += data[i];
        }
    }
    require(events[0].id == std::to_string(id), "a framed event's id reads back changed");
    require(events[0].type == expected_type, "a framed event's type reads back changed");
    require(events[0].data == expected_data, "a framed event's data reads back changed");
}

// The Last-Event-ID the hub goes by, as its rules say: the header if there
// is one, else the first last_event_id parameter of the query; blank is none.
std::optional<std::string> id_used(Request const& request)
{
    std::optional<std::string> id;
    if (auto header = request.headers.get("Last-Event-ID")) {
        id = std::string(*header);
    } else {
        std::string_view query = request.query;
        while (!id) {
            size_t amp = query.find('&');
            std::string_view pair = query.substr(0, amp);
            size_t eq = pair.find('=');
            if (pair.substr(0, eq) == "last_event_id")
                id = std::string(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
            if (amp == std::string_view::npos)
                break;
            query.remove_prefix(amp + 1);
        }
    }
    if (id && id->find_first_not_of(" \t") == std::string::npos)
        id.reset();
    return id;
}

void check_plan(ResumePlan const& plan, EventRange range)
{
    switch (plan.kind) {
    case ResumePlan::Kind::Live:
        require(plan.after == range.last, "a live plan does not start after the newest event");
        break;
    case ResumePlan::Kind::Replay:
        require(range.oldest > 0 && plan.after >= range.oldest - 1 && plan.after < range.last,
            "a replay starts outside the kept events");
        break;
    case ResumePlan::Kind::Reset:
        require(plan.after == range.last, "a reset does not start after the newest event");
        require(plan.reason == "malformed_id" || plan.reason == "unknown_id" || plan.reason == "expired_id",
            "a reset has an unknown reason");
        break;
    }
}

}

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    static bool const quiet = [] {
        log::configure(log::Level::Error, log::Format::Text);
        return true;
    }();
    (void)quiet;

    FuzzedDataProvider input(data, size);
    FakeLog events;
    events.last = input.ConsumeIntegralInRange<int64_t>(0, 300);
    int64_t kept = input.ConsumeIntegralInRange<int64_t>(0, events.last);
    events.oldest = kept > 0 ? events.last - kept + 1 : 0;
    int how = input.ConsumeIntegralInRange(0, 2); // header, query, both
    std::string last_event_id = input.ConsumeRandomLengthString(40);
    std::string query_prefix = input.ConsumeRandomLengthString(40);
    int live = input.ConsumeIntegralInRange(0, 3);
    int64_t frame_id = input.ConsumeIntegral<int64_t>();
    std::string frame_type = input.ConsumeRandomLengthString(40);
    std::string frame_data = input.ConsumeRemainingBytesAsString();

    check_framing(frame_id, frame_type, frame_data);
    EventRange range { events.oldest, events.last };
    ResumePlan plan = plan_resume(std::string_view(last_event_id), range);
    check_plan(plan, range);
    check_plan(plan_resume(std::nullopt, range), range);

    uv_loop_t loop;
    require(uv_loop_init(&loop) == 0, "uv_loop_init");
    Connection connection;
    std::optional<std::string> hub_id;
    {
        SseHub hub(&loop, events, [](Request const&) { return std::optional<Response>(); });
        Router router;
        hub.add_routes(router);

        Request request;
        request.method = "GET";
        request.path = "/api/events";
        if (how != 0)
            request.query = query_prefix + "&last_event_id=" + last_event_id;
        request.target = request.path + "?" + request.query;
        if (how != 1)
            request.headers.add("Last-Event-ID", last_event_id);
        request.client_address = "127.0.0.1:1";
        hub_id = id_used(request);
        router.dispatch(std::move(request), Responder(std::make_shared<ResponseSlot>(&connection)));
        require(!connection.refused, "an admitted subscriber was refused");
        require(hub.subscriber_count() == 1, "an admitted subscriber is not subscribed");

        // The replay runs on 0 ms timers, which the hub leaves unreferenced;
        // this one keeps the loop alive, and NOWAIT runs what is due without
        // waiting for the next keepalive.
        uv_timer_t keep_alive;
        uv_timer_init(&loop, &keep_alive);
        uv_timer_start(&keep_alive, [](uv_timer_t*) noexcept {}, 60'000, 0);
        for (int turns = 0; hub.replaying_count() > 0; ++turns) {
            require(turns < 1000, "a replay of at most 300 events does not finish");
            uv_run(&loop, UV_RUN_NOWAIT);
        }
        for (int i = 0; i < live; ++i) {
            ++events.last;
            if (events.oldest == 0)
                events.oldest = events.last;
            hub.publish(events.last, FakeLog::type_of(events.last), FakeLog::data_of(events.last));
        }
        uv_close(reinterpret_cast<uv_handle_t*>(&keep_alive), nullptr);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    require(uv_loop_close(&loop) == 0, "the hub left a handle open");
    require(connection.closed, "the hub did not close its stream when it went away");

    // What the subscriber saw: [stream.reset] then consecutive events from
    // where its Last-Event-ID says, to the newest one.
    ResumePlan const hub_plan = plan_resume(hub_id ? std::optional<std::string_view>(*hub_id) : std::nullopt, range);
    auto received = read_events(connection.received);
    size_t first = 0;
    if (hub_plan.kind == ResumePlan::Kind::Reset) {
        require(!received.empty() && received[0].type == "stream.reset", "a reset plan sent no stream.reset");
        require(received[0].id == std::to_string(range.last), "stream.reset does not carry the newest id");
        first = 1;
    }
    int64_t expected = hub_plan.after + 1;
    for (size_t i = first; i < received.size(); ++i, ++expected) {
        require(received[i].id == std::to_string(expected), "the stream has a gap or a repeat");
        require(received[i].type == FakeLog::type_of(expected) && received[i].data == FakeLog::data_of(expected),
            "an event reads back different from the log");
    }
    require(expected == events.last + 1, "the stream does not reach the newest event");
    return 0;
}
