// SseHub without sockets: SSE framing, where a Last-Event-ID resumes, and
// the hub itself on a real loop with a fake event log and fake streams:
// the replay/live hand-over (events published during a chunked replay are
// neither lost nor repeated), resets, gaps, the backlog bound, keepalives.
#include "worker/sse_hub.h"

#include <doctest/doctest.h>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <uv.h>
#include <vector>

using namespace posta;

namespace {

// An SSE client's parser (WHATWG HTML 9.2.6), enough to check our framing
// the way a browser reads it.
struct ParsedEvent {
    std::optional<std::string> id;
    std::string type = "message";
    std::string data;
};

struct Parsed {
    std::vector<ParsedEvent> events;
    std::vector<std::string> comments;
};

Parsed parse_sse(std::string_view stream)
{
    Parsed out;
    ParsedEvent current;
    std::string data;
    bool has_data = false;
    bool has_fields = false;
    size_t pos = 0;
    while (pos < stream.size()) {
        size_t end = stream.find_first_of("\r\n", pos);
        REQUIRE(end != std::string_view::npos); // every line is terminated
        std::string_view line = stream.substr(pos, end - pos);
        pos = end + (stream[end] == '\r' && end + 1 < stream.size() && stream[end + 1] == '\n' ? 2 : 1);
        if (line.empty()) {
            if (has_data) {
                if (!data.empty() && data.back() == '\n')
                    data.pop_back();
                current.data = data;
                out.events.push_back(current);
            }
            current = ParsedEvent {};
            data.clear();
            has_data = false;
            has_fields = false;
            continue;
        }
        if (line.front() == ':') {
            out.comments.emplace_back(line.substr(1));
            continue;
        }
        size_t colon = line.find(':');
        std::string_view field = line.substr(0, colon);
        std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        has_fields = true;
        if (field == "data") {
            data += value;
            data += '\n';
            has_data = true;
        } else if (field == "event") {
            current.type = std::string(value);
        } else if (field == "id") {
            current.id = std::string(value);
        }
    }
    CHECK_FALSE(has_fields); // the stream ends at an event boundary
    return out;
}

// The event log, in memory.
class FakeLog final : public EventLog {
public:
    int64_t append(std::string type, std::string data)
    {
        ++m_last;
        m_events.push_back(StoredEvent { m_last, std::move(type), std::move(data), 0 });
        return m_last;
    }
    // Forgets every event up to and including `seq`.
    void prune(int64_t seq)
    {
        std::erase_if(m_events, [&](StoredEvent const& e) { return e.seq <= seq; });
    }
    Result<EventRange> event_range() override
    {
        return EventRange { m_events.empty() ? 0 : m_events.front().seq, m_last };
    }
    Result<std::vector<StoredEvent>> events_after(int64_t after, int limit) override
    {
        ++reads;
        if (fail)
            return Error::message("sqlite3_step", "disk I/O error", "inbox.db");
        std::vector<StoredEvent> out;
        for (auto const& e : m_events) {
            if (e.seq > after && out.size() < static_cast<size_t>(limit))
                out.push_back(e);
        }
        return out;
    }

    int reads = 0;
    bool fail = false;

private:
    std::vector<StoredEvent> m_events;
    int64_t m_last = 0;
};

// A stream's connection: records what was written; `reading` false makes
// everything written stay queued, as with a client that stopped reading.
class FakeConnection final : public StreamSink {
public:
    FakeConnection()
        : stream(std::make_shared<ResponseStream>(this))
    {
    }
    // Like a session that goes away: the stream no longer reaches it.
    ~FakeConnection() override
    {
        if (stream)
            stream->detach();
    }
    FakeConnection(FakeConnection const&) = delete;
    FakeConnection& operator=(FakeConnection const&) = delete;

    void stream_write(std::string bytes) override
    {
        written += bytes;
        if (!reading)
            queued += bytes.size();
    }
    size_t stream_queued_bytes() const override { return queued; }
    void stream_close(Close how, std::string_view reason) override
    {
        closed = how;
        close_reason = std::string(reason);
    }

    // The client took everything: what the session does after a write completes.
    void drain()
    {
        queued = 0;
        stream->notify_drained();
    }
    // The connection ended (the session's last close callback).
    void end()
    {
        stream->detach();
        auto keep = stream;
        keep->notify_closed();
    }

    Parsed parsed() const { return parse_sse(written); }
    std::vector<int64_t> ids() const
    {
        std::vector<int64_t> out;
        for (auto const& e : parsed().events)
            out.push_back(std::stoll(e.id.value_or("-1")));
        return out;
    }

    std::shared_ptr<ResponseStream> stream;
    std::string written;
    size_t queued = 0;
    bool reading = true;
    std::optional<Close> closed;
    std::string close_reason;
};

std::vector<int64_t> range_ids(int64_t first, int64_t last)
{
    std::vector<int64_t> out;
    for (int64_t i = first; i <= last; ++i)
        out.push_back(i);
    return out;
}

// A loop for the hub. The hub's timers do not keep a loop alive, so a
// referenced timer does, as the worker's sessions and channel do; it ticks
// so that a wait for something that never comes still meets its deadline.
class Loop {
public:
    Loop()
    {
        REQUIRE(uv_loop_init(&m_loop) == 0);
        uv_timer_init(&m_loop, &m_alive);
        uv_timer_start(&m_alive, [](uv_timer_t*) noexcept {}, 10, 10);
    }
    ~Loop()
    {
        uv_close(reinterpret_cast<uv_handle_t*>(&m_alive), nullptr);
        uv_run(&m_loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&m_loop) == 0);
    }
    uv_loop_t* get() { return &m_loop; }
    // One loop turn that does not wait.
    void turn() { uv_run(&m_loop, UV_RUN_NOWAIT); }
    // Turns (waiting for timers) until `done` or the deadline.
    bool run_until(std::function<bool()> const& done, uint64_t timeout_ms = 5000)
    {
        uint64_t deadline = uv_now(&m_loop) + timeout_ms;
        while (!done()) {
            if (uv_now(&m_loop) > deadline)
                return false;
            uv_run(&m_loop, UV_RUN_ONCE);
        }
        return true;
    }

private:
    uv_loop_t m_loop {};
    uv_timer_t m_alive {};
};

SseHub::Authorizer admit_all()
{
    return [](Request const&) -> std::optional<Response> { return std::nullopt; };
}

ResumePlan live_after(int64_t seq) { return { ResumePlan::Kind::Live, seq, {} }; }
ResumePlan replay_after(int64_t seq) { return { ResumePlan::Kind::Replay, seq, {} }; }

}

// ---- Framing ----

TEST_CASE("an event is framed as id, event and one data line, then a blank line")
{
    CHECK(format_sse_event(42, "message.received", R"({"id":"x"})")
        == "id: 42\nevent: message.received\ndata: {\"id\":\"x\"}\n\n");
}

TEST_CASE("multi-line data becomes one data line per line and reads back the same")
{
    CHECK(format_sse_event(1, "t", "a\nb") == "id: 1\nevent: t\ndata: a\ndata: b\n\n");
    CHECK(format_sse_event(1, "t", "a\r\nb\rc") == "id: 1\nevent: t\ndata: a\ndata: b\ndata: c\n\n");
    for (std::string_view data : { "one", "a\nb\nc", "trailing\n", "\nleading", "", "\n", " spaced ", "x\n\ny" }) {
        Parsed parsed = parse_sse(format_sse_event(7, "t", data));
        REQUIRE(parsed.events.size() == 1);
        CHECK(parsed.events[0].data == data);
        CHECK(parsed.events[0].id == "7");
        CHECK(parsed.events[0].type == "t");
    }
    // CR and CRLF are line ends too; a client reads them as LF.
    Parsed crlf = parse_sse(format_sse_event(8, "t", "a\r\nb\rc"));
    REQUIRE(crlf.events.size() == 1);
    CHECK(crlf.events[0].data == "a\nb\nc");
}

TEST_CASE("an event without an id has no id line, and a line break cannot forge a field through the type")
{
    CHECK(format_sse_event(std::nullopt, "t", "d") == "event: t\ndata: d\n\n");
    CHECK(format_sse_event(3, "a\nid: 99", "d") == "id: 3\nevent: a id: 99\ndata: d\n\n");
}

TEST_CASE("a keepalive is a comment that clients ignore")
{
    CHECK(format_sse_comment("keepalive") == ": keepalive\n\n");
    Parsed parsed = parse_sse(format_sse_comment("keepalive"));
    CHECK(parsed.events.empty());
    CHECK(parsed.comments == std::vector<std::string> { " keepalive" });
}

// ---- Where a Last-Event-ID resumes ----

TEST_CASE("without Last-Event-ID a subscriber gets live events after the newest")
{
    ResumePlan plan = plan_resume(std::nullopt, EventRange { 3, 9 });
    CHECK(plan.kind == ResumePlan::Kind::Live);
    CHECK(plan.after == 9);
}

TEST_CASE("a Last-Event-ID among the kept events replays what follows it")
{
    EventRange range { 3, 9 };
    CHECK(plan_resume("5", range).kind == ResumePlan::Kind::Replay);
    CHECK(plan_resume("5", range).after == 5);
    // The event right before the oldest kept one: nothing after it is lost.
    CHECK(plan_resume("2", range).kind == ResumePlan::Kind::Replay);
    CHECK(plan_resume(" 4 ", range).after == 4);
    // The newest: nothing to replay.
    CHECK(plan_resume("9", range).kind == ResumePlan::Kind::Live);
    CHECK(plan_resume("9", range).after == 9);
    // A fresh log: 0 means "from the start".
    CHECK(plan_resume("0", EventRange { 1, 4 }).kind == ResumePlan::Kind::Replay);
    CHECK(plan_resume("0", EventRange { 0, 0 }).kind == ResumePlan::Kind::Live);
}

TEST_CASE("a Last-Event-ID older than what is kept, unknown or not a number is reset to the newest")
{
    EventRange range { 3, 9 };
    auto expect_reset = [&](ResumePlan plan, std::string reason) {
        CHECK(plan.kind == ResumePlan::Kind::Reset);
        CHECK(plan.reason == reason);
        CHECK(plan.after == 9);
    };
    expect_reset(plan_resume("1", range), "expired_id");
    expect_reset(plan_resume("10", range), "unknown_id");
    expect_reset(plan_resume("123456789012345678901234", range), "malformed_id");
    for (std::string_view bad : { "abc", "-1", "+3", "1.5", "0x5", "5 5", "" })
        expect_reset(plan_resume(bad, range), "malformed_id");
    // Everything pruned: only the newest id itself is still a place to resume.
    CHECK(plan_resume("4", EventRange { 0, 9 }).kind == ResumePlan::Kind::Reset);
    CHECK(plan_resume("4", EventRange { 0, 9 }).reason == "expired_id");
    CHECK(plan_resume("9", EventRange { 0, 9 }).kind == ResumePlan::Kind::Live);
    CHECK(plan_resume("1", EventRange { 0, 0 }).reason == "unknown_id");
}

// ---- The hub ----

TEST_CASE("a live subscriber gets each published event once, in order, with its seq as id")
{
    Loop loop;
    FakeLog log;
    SseHub hub(loop.get(), log, admit_all());
    FakeConnection client;
    hub.subscribe(client.stream, live_after(0), "client");
    for (int i = 0; i < 3; ++i) {
        int64_t seq = log.append("message.received", "{\"n\":" + std::to_string(i) + "}");
        hub.publish(seq, "message.received", "{\"n\":" + std::to_string(i) + "}");
    }
    Parsed parsed = client.parsed();
    REQUIRE(parsed.events.size() == 3);
    CHECK(parsed.events[2].id == "3");
    CHECK(parsed.events[2].type == "message.received");
    CHECK(parsed.events[2].data == "{\"n\":2}");
    CHECK(log.reads == 0); // live events never touch the log
}

TEST_CASE("events published while a chunked replay runs are neither lost nor repeated")
{
    Loop loop;
    FakeLog log;
    for (int i = 0; i < 20; ++i)
        log.append("message.received", "{}");
    SseLimits limits;
    limits.replay_chunk = 3;
    SseHub hub(loop.get(), log, admit_all(), limits);
    FakeConnection resumed;
    FakeConnection live;
    hub.subscribe(live.stream, live_after(20), "live");
    hub.subscribe(resumed.stream, replay_after(4), "resumed");
    CHECK(hub.replaying_count() == 1);

    // A live event before the first chunk: the replay reads it from the log.
    int64_t seq = log.append("delivery.updated", "{}");
    hub.publish(seq, "delivery.updated", "{}");
    CHECK(resumed.written.empty());

    int turns = 0;
    while (hub.replaying_count() > 0 && turns < 100) {
        loop.turn();
        ++turns;
        // Another event lands after every turn, mid-replay.
        seq = log.append("message.received", "{}");
        hub.publish(seq, "message.received", "{}");
    }
    CHECK(hub.replaying_count() == 0);
    // Bounded chunks: the replay took several turns, not one.
    CHECK(turns >= 5);

    for (int i = 0; i < 3; ++i) {
        seq = log.append("message.received", "{}");
        hub.publish(seq, "message.received", "{}");
    }
    CHECK(resumed.ids() == range_ids(5, seq));
    CHECK(live.ids() == range_ids(21, seq));
}

TEST_CASE("a replay longer than the loop-turn budget continues on later turns")
{
    Loop loop;
    FakeLog log;
    std::string big(1000, 'x');
    for (int i = 0; i < 50; ++i)
        log.append("message.received", big);
    SseLimits limits;
    limits.replay_budget = 10'000; // about ten events a turn
    SseHub hub(loop.get(), log, admit_all(), limits);
    FakeConnection client;
    hub.subscribe(client.stream, replay_after(0), "client");
    loop.turn();
    size_t after_one_turn = client.ids().size();
    CHECK(after_one_turn >= 10);
    CHECK(after_one_turn < 20);
    REQUIRE(loop.run_until([&] { return hub.replaying_count() == 0; }));
    CHECK(client.ids() == range_ids(1, 50));
}

TEST_CASE("a replay pauses while the subscriber's backlog is high and goes on when it drains")
{
    Loop loop;
    FakeLog log;
    for (int i = 0; i < 30; ++i)
        log.append("message.received", std::string(100, 'x'));
    SseLimits limits;
    limits.replay_high_water = 1000;
    SseHub hub(loop.get(), log, admit_all(), limits);
    FakeConnection client;
    client.reading = false;
    hub.subscribe(client.stream, replay_after(0), "client");
    for (int i = 0; i < 5; ++i)
        loop.turn();
    size_t sent = client.ids().size();
    CHECK(sent > 0);
    CHECK(sent < 30);
    CHECK(hub.replaying_count() == 1);
    CHECK(!client.closed); // paused, not dropped

    client.reading = true;
    client.drain();
    REQUIRE(loop.run_until([&] { return hub.replaying_count() == 0; }));
    CHECK(client.ids() == range_ids(1, 30));
}

TEST_CASE("a reset subscriber first gets stream.reset with the newest id, then live events only")
{
    Loop loop;
    FakeLog log;
    for (int i = 0; i < 5; ++i)
        log.append("message.received", "{}");
    SseHub hub(loop.get(), log, admit_all());
    FakeConnection client;
    hub.subscribe(client.stream, plan_resume("77", log.event_range().value()), "client");
    int64_t seq = log.append("message.received", "{\"new\":true}");
    hub.publish(seq, "message.received", "{\"new\":true}");
    loop.turn();

    Parsed parsed = client.parsed();
    REQUIRE(parsed.events.size() == 2);
    CHECK(parsed.events[0].type == "stream.reset");
    CHECK(parsed.events[0].id == "5");
    CHECK(parsed.events[0].data == R"({"reason":"unknown_id"})");
    CHECK(parsed.events[1].id == "6");
    CHECK(log.reads == 0); // kept events are not replayed after a reset
}

TEST_CASE("an event appended but never published reaches live subscribers through the log, in order")
{
    Loop loop;
    FakeLog log;
    SseHub hub(loop.get(), log, admit_all());
    FakeConnection client;
    hub.subscribe(client.stream, live_after(0), "client");
    log.append("delivery.updated", "{\"unpublished\":true}");
    int64_t seq = log.append("message.received", "{}");
    hub.publish(seq, "message.received", "{}");
    REQUIRE(loop.run_until([&] { return hub.replaying_count() == 0; }));
    CHECK(client.ids() == std::vector<int64_t> { 1, 2 });

    // Out of order: 4 is published before 3.
    int64_t third = log.append("message.received", "{}");
    int64_t fourth = log.append("message.received", "{}");
    hub.publish(fourth, "message.received", "{}");
    hub.publish(third, "message.received", "{}");
    REQUIRE(loop.run_until([&] { return hub.replaying_count() == 0; }));
    hub.publish(third, "message.received", "{}"); // and again: no repeat
    CHECK(client.ids() == std::vector<int64_t> { 1, 2, 3, 4 });
}

TEST_CASE("a subscriber whose backlog passes the bound is dropped while the others keep receiving")
{
    Loop loop;
    FakeLog log;
    SseLimits limits;
    limits.backlog_bound = 4096;
    SseHub hub(loop.get(), log, admit_all(), limits);
    FakeConnection slow;
    FakeConnection fast;
    slow.reading = false;
    hub.subscribe(slow.stream, live_after(0), "slow");
    hub.subscribe(fast.stream, live_after(0), "fast");
    std::string body(1000, 'x');
    int64_t seq = 0;
    for (int i = 0; i < 10; ++i) {
        seq = log.append("message.received", body);
        hub.publish(seq, "message.received", body);
    }
    CHECK(slow.closed == StreamSink::Close::Discard);
    CHECK(!slow.stream->is_open());
    CHECK(slow.ids().size() < 10);
    CHECK(hub.subscriber_count() == 1);
    CHECK(fast.ids() == range_ids(1, 10));
    CHECK(!fast.closed);
    // The dropped stream is told later; that is harmless.
    slow.end();
    CHECK(hub.subscriber_count() == 1);
}

TEST_CASE("one keepalive comment goes to every subscriber each interval")
{
    Loop loop;
    FakeLog log;
    SseLimits limits;
    limits.keepalive_interval_ms = 5;
    SseHub hub(loop.get(), log, admit_all(), limits);
    FakeConnection a;
    FakeConnection b;
    hub.subscribe(a.stream, live_after(0), "a");
    hub.subscribe(b.stream, live_after(0), "b");
    REQUIRE(loop.run_until([&] { return a.parsed().comments.size() >= 2; }));
    CHECK(b.parsed().comments.size() >= 1);
    CHECK(a.parsed().comments[0] == " keepalive");
    CHECK(a.parsed().events.empty());
}

TEST_CASE("a subscriber whose connection closed is forgotten")
{
    Loop loop;
    FakeLog log;
    SseHub hub(loop.get(), log, admit_all());
    FakeConnection client;
    hub.subscribe(client.stream, live_after(0), "client");
    std::weak_ptr<ResponseStream> stream = client.stream;
    client.end();
    CHECK(hub.subscriber_count() == 0);
    client.stream.reset();
    CHECK(stream.expired()); // the hub let go of it
    int64_t seq = log.append("message.received", "{}");
    hub.publish(seq, "message.received", "{}");
}

TEST_CASE("a replay that cannot read the log closes the stream so the client resumes later")
{
    Loop loop;
    FakeLog log;
    for (int i = 0; i < 3; ++i)
        log.append("message.received", "{}");
    log.fail = true;
    SseHub hub(loop.get(), log, admit_all());
    FakeConnection client;
    hub.subscribe(client.stream, replay_after(1), "client");
    loop.turn();
    CHECK(client.closed == StreamSink::Close::Flush);
    CHECK(hub.replaying_count() == 0);
    client.end();
    CHECK(hub.subscriber_count() == 0);
}

TEST_CASE("destroying the hub closes its open streams the orderly way")
{
    Loop loop;
    FakeLog log;
    FakeConnection client;
    {
        SseHub hub(loop.get(), log, admit_all());
        hub.subscribe(client.stream, live_after(0), "client");
    }
    CHECK(client.closed == StreamSink::Close::Flush);
}
