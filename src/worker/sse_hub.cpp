// How the hub keeps "no gap, no repeat". Every subscriber has last_sent,
// the highest seq it was sent (or, for a live-only subscriber, the newest
// seq when it came). Events reach it along one of two paths, never both:
// - replaying: read from the log with events_after(last_sent), a chunk per
//   loop turn. Live publishes skip it: they were committed before being
//   published, so the log has them. A chunk shorter than asked for means the
//   log has nothing newer; the worker is single-threaded, so nothing can be
//   committed between that read and the switch to live.
// - live: publish(seq) sends seq only when it is last_sent + 1. An older seq
//   was sent already; a newer one means an event was appended but never
//   published to us (or published out of order), so the subscriber goes
//   back to reading the log, which fills the gap in order.
//
// Subscribers are shared_ptrs held by the map and by whoever works on one,
// so dropping one from the map in the middle of a pass over all of them is
// safe; a stream's callbacks come from the session's own callbacks, never
// from inside a write, so the map is never changed under such a pass by them.
#include "sse_hub.h"

#include "common/log.h"
#include "http/router.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <utility>

namespace posta {

namespace {

std::optional<int64_t> parse_seq(std::string_view text)
{
    text = trim_ows(text);
    if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

// The raw value of `name` in an application/x-www-form-urlencoded query. A
// seq needs no percent-decoding; anything encoded is not a seq anyway.
std::optional<std::string_view> query_value(std::string_view query, std::string_view name)
{
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name)
            return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    return std::nullopt;
}

char const* kind_name(ResumePlan::Kind kind)
{
    switch (kind) {
    case ResumePlan::Kind::Live:
        return "live";
    case ResumePlan::Kind::Replay:
        return "replay";
    case ResumePlan::Kind::Reset:
        return "reset";
    }
    return "?";
}

}

std::string format_sse_event(std::optional<int64_t> id, std::string_view type, std::string_view data)
{
    std::string out;
    out.reserve(data.size() + type.size() + 48);
    if (id) {
        out += "id: ";
        out += std::to_string(*id);
        out += '\n';
    }
    out += "event: ";
    for (char c : type)
        out += (c == '\r' || c == '\n') ? ' ' : c;
    out += '\n';
    // Refs: WHATWG HTML 9.2.5: a client ends a line at CRLF, LF or CR and
    // joins the data lines of one event with LF.
    size_t start = 0;
    while (true) {
        size_t end = data.find_first_of("\r\n", start);
        out += "data: ";
        out += data.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        out += '\n';
        if (end == std::string_view::npos)
            break;
        start = end + (data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n' ? 2 : 1);
    }
    out += '\n';
    return out;
}

std::string format_sse_comment(std::string_view text)
{
    std::string out = ": ";
    out += text;
    out += "\n\n";
    return out;
}

ResumePlan plan_resume(std::optional<std::string_view> last_event_id, EventRange range)
{
    if (!last_event_id)
        return { ResumePlan::Kind::Live, range.last, {} };
    auto seq = parse_seq(*last_event_id);
    if (!seq)
        return { ResumePlan::Kind::Reset, range.last, "malformed_id" };
    if (*seq > range.last)
        return { ResumePlan::Kind::Reset, range.last, "unknown_id" };
    if (*seq == range.last)
        return { ResumePlan::Kind::Live, *seq, {} };
    // Events after seq were given. Nothing kept, or the first kept one
    // is not seq + 1: some of them were pruned.
    if (range.oldest == 0 || *seq < range.oldest - 1)
        return { ResumePlan::Kind::Reset, range.last, "expired_id" };
    return { ResumePlan::Kind::Replay, *seq, {} };
}

struct SseHub::Subscriber {
    uint64_t id = 0;
    std::shared_ptr<ResponseStream> stream;
    std::string peer;
    int64_t last_sent = 0;
    bool replaying = false; // events come from the log, not from publish()
    bool paused = false;    // replaying, waiting for the backlog to drain
};

SseHub::SseHub(uv_loop_t* loop, EventLog& log, Authorizer authorize, Limits limits)
    : m_log(log)
    , m_authorize(std::move(authorize))
    , m_limits(limits)
    , m_keepalive_timer(make_timer(loop, this))
{
    auto* idle = new uv_idle_t {};
    uv_idle_init(loop, idle); // cannot fail
    idle->data = this;
    m_replay_idle = UvHandle<uv_idle_t>::adopt(idle);
    uv_unref(reinterpret_cast<uv_handle_t*>(m_replay_idle.get()));
    uv_unref(reinterpret_cast<uv_handle_t*>(m_keepalive_timer.get()));
}

SseHub::~SseHub()
{
    for (auto const& [id, subscriber] : m_subscribers) {
        subscriber->stream->set_on_closed(nullptr);
        subscriber->stream->set_on_drained(nullptr);
        subscriber->stream->close("worker exiting");
    }
    m_subscribers.clear();
}

void SseHub::add_routes(Router& router)
{
    router.add("GET", "/api/events", [this](Request request, Responder responder) { handle(request, responder); });
}

void SseHub::handle(Request const& request, Responder const& responder)
{
    // Fail closed: a hub without an authorizer admits nobody.
    std::optional<Response> refusal = m_authorize
        ? m_authorize(request)
        : Response::error(401, "unauthorized", "this event stream admits no one");
    if (refusal) {
        responder.respond(std::move(*refusal));
        return;
    }

    // The header is what EventSource sends on reconnect; the query parameter
    // serves a first request that cannot set headers (curl, a browser).
    std::optional<std::string_view> last_event_id = request.headers.get("Last-Event-ID");
    if (!last_event_id)
        last_event_id = query_value(request.query, "last_event_id");
    if (last_event_id && trim_ows(*last_event_id).empty())
        last_event_id.reset();

    auto range = m_log.event_range();
    if (!range) {
        log::error("events: %s: cannot read the event log: %s", request.client_address.c_str(),
            range.error().text().c_str());
        responder.respond(Response::error(500, "store_error", "the event log could not be read; try again"));
        return;
    }
    ResumePlan plan = plan_resume(last_event_id, range.value());

    Response head;
    head.headers.set("Content-Type", "text/event-stream");
    head.headers.set("Cache-Control", "no-cache");
    // nginx would buffer the stream; this header makes it pass each event on.
    head.headers.set("X-Accel-Buffering", "no");
    auto stream = responder.start_stream(std::move(head));
    if (!stream || !stream->is_open() || request.is_head())
        return; // gone, stopping, or HEAD: the head was all there is
    subscribe(std::move(stream), plan, request.client_address);
}

void SseHub::subscribe(std::shared_ptr<ResponseStream> stream, ResumePlan const& plan, std::string peer)
{
    auto subscriber = std::make_shared<Subscriber>();
    subscriber->id = m_next_id++;
    subscriber->stream = std::move(stream);
    subscriber->peer = std::move(peer);
    subscriber->last_sent = plan.after;
    subscriber->replaying = plan.kind == ResumePlan::Kind::Replay;
    uint64_t id = subscriber->id;
    subscriber->stream->set_on_closed([this, id] { on_stream_closed(id); });
    subscriber->stream->set_on_drained([this, id] { on_stream_drained(id); });
    m_subscribers.emplace(id, subscriber);
    if (plan.kind == ResumePlan::Kind::Reset)
        log::info("events: %s subscribed: stream.reset (%s), then live after %lld", subscriber->peer.c_str(),
            plan.reason.c_str(), static_cast<long long>(plan.after));
    else
        log::info("events: %s subscribed: %s after %lld", subscriber->peer.c_str(), kind_name(plan.kind),
            static_cast<long long>(plan.after));

    if (plan.kind == ResumePlan::Kind::Reset)
        subscriber->stream->write(
            format_sse_event(plan.after, "stream.reset", nlohmann::json { { "reason", plan.reason } }.dump()));
    if (subscriber->replaying)
        schedule_replay();
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(m_keepalive_timer.get()))) {
        uv_timer_start(m_keepalive_timer.get(), [](uv_timer_t* timer) noexcept {
            if (auto* self = static_cast<SseHub*>(timer->data))
                self->on_keepalive_timer();
        }, m_limits.keepalive_interval_ms, m_limits.keepalive_interval_ms);
    }
}

size_t SseHub::replaying_count() const
{
    size_t n = 0;
    for (auto const& [id, subscriber] : m_subscribers)
        n += subscriber->replaying ? 1 : 0;
    return n;
}

void SseHub::publish(int64_t seq, std::string_view type, std::string_view data)
{
    if (m_subscribers.empty())
        return;
    std::string frame = format_sse_event(seq, type, data);
    bool gap = false;
    for (SubscriberPtr const& subscriber : snapshot()) {
        if (subscriber->replaying || seq <= subscriber->last_sent)
            continue;
        if (seq != subscriber->last_sent + 1) {
            subscriber->replaying = true;
            gap = true;
            continue;
        }
        if (send(*subscriber, frame))
            subscriber->last_sent = seq;
    }
    if (gap)
        schedule_replay();
}

bool SseHub::send(Subscriber& subscriber, std::string bytes)
{
    if (!subscriber.stream->is_open())
        return false; // closing; on_stream_closed follows
    size_t queued = subscriber.stream->queued_bytes();
    if (queued > m_limits.backlog_bound) {
        drop(subscriber, std::to_string(queued) + " bytes unsent, over the bound of "
                + std::to_string(m_limits.backlog_bound));
        return false;
    }
    subscriber.stream->write(std::move(bytes));
    return subscriber.stream->is_open();
}

void SseHub::drop(Subscriber& subscriber, std::string const& why)
{
    log::warn("events: dropped %s: %s (events up to %lld were queued); the client resumes with Last-Event-ID",
        subscriber.peer.c_str(), why.c_str(), static_cast<long long>(subscriber.last_sent));
    subscriber.stream->set_on_closed(nullptr);
    subscriber.stream->set_on_drained(nullptr);
    subscriber.stream->abort("event stream dropped: " + why);
    // The caller holds its own reference; the stream goes with the last one.
    m_subscribers.erase(subscriber.id);
    if (m_subscribers.empty())
        uv_timer_stop(m_keepalive_timer.get());
}

void SseHub::replay_some(Subscriber& subscriber)
{
    if (!subscriber.stream->is_open()) {
        subscriber.replaying = false; // closing; on_stream_closed follows
        return;
    }
    auto events = m_log.events_after(subscriber.last_sent, m_limits.replay_chunk);
    if (!events) {
        log::error("events: cannot replay to %s: %s; closing its stream (it resumes with Last-Event-ID)",
            subscriber.peer.c_str(), events.error().text().c_str());
        subscriber.replaying = false;
        subscriber.stream->close("the event log could not be read");
        return;
    }
    size_t written = 0;
    for (StoredEvent const& event : events.value()) {
        std::string frame = format_sse_event(event.seq, event.type, event.data);
        written += frame.size();
        if (!send(subscriber, std::move(frame)))
            return;
        subscriber.last_sent = event.seq;
        if (subscriber.stream->queued_bytes() > m_limits.replay_high_water) {
            subscriber.paused = true; // on_stream_drained goes on
            return;
        }
        if (written >= m_limits.replay_budget)
            return; // the rest on the next turn
    }
    if (events.value().size() < static_cast<size_t>(m_limits.replay_chunk)) {
        subscriber.replaying = false;
        log::debug("events: %s caught up at %lld", subscriber.peer.c_str(),
            static_cast<long long>(subscriber.last_sent));
    }
}

// Starts the idle handle when a replay can go on, stops it when none can.
void SseHub::schedule_replay()
{
    uv_idle_t* idle = m_replay_idle.get();
    if (!idle)
        return;
    bool work = false;
    for (auto const& [id, subscriber] : m_subscribers)
        work = work || (subscriber->replaying && !subscriber->paused);
    if (!work) {
        uv_idle_stop(idle);
        return;
    }
    uv_idle_start(idle, [](uv_idle_t* handle) noexcept { // no-op when active
        if (auto* self = static_cast<SseHub*>(handle->data))
            self->on_replay_turn();
    });
}

void SseHub::on_replay_turn()
{
    for (SubscriberPtr const& subscriber : snapshot()) {
        if (subscriber->replaying && !subscriber->paused)
            replay_some(*subscriber);
    }
    schedule_replay();
}

void SseHub::on_keepalive_timer()
{
    std::string const comment = format_sse_comment("keepalive");
    for (SubscriberPtr const& subscriber : snapshot())
        send(*subscriber, comment);
}

void SseHub::on_stream_closed(uint64_t id)
{
    auto it = m_subscribers.find(id);
    if (it == m_subscribers.end())
        return;
    log::debug("events: %s unsubscribed", it->second->peer.c_str());
    m_subscribers.erase(it);
    if (m_subscribers.empty())
        uv_timer_stop(m_keepalive_timer.get());
}

void SseHub::on_stream_drained(uint64_t id)
{
    auto it = m_subscribers.find(id);
    if (it == m_subscribers.end() || !it->second->paused)
        return;
    it->second->paused = false;
    schedule_replay();
}

std::vector<SseHub::SubscriberPtr> SseHub::snapshot() const
{
    std::vector<SubscriberPtr> out;
    out.reserve(m_subscribers.size());
    for (auto const& [id, subscriber] : m_subscribers)
        out.push_back(subscriber);
    return out;
}

}
