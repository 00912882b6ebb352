// SseHub: GET /api/events of one identity (PROTOCOL.md, "Event stream"), one
// per worker. It replays kept events from the identity's event log after a
// Last-Event-ID, then publishes new ones live to every subscriber, sends a
// keepalive comment every 15 s and drops a subscriber whose backlog passes
// its bound. It owns its subscribers' streams and its two timers; the event
// log and the authorizer are the worker's and must outlive it.
#pragma once

#include "common/uv_handle.h"
#include "http/http_message.h"
#include "http/responder.h"
#include "worker/store.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <uv.h>
#include <vector>

namespace posta {

class Router;

// One SSE event as it goes on the wire (Refs: WHATWG HTML, "Server-sent
// events", 9.2.5): "id: <id>\n" when `id` is given, "event: <type>\n",
// one "data: " line per line of `data` (split at CRLF, CR or LF, so a client
// joins them back into the same text), then a blank line. A line break in
// `type` would end the field early; it is replaced by a space.
std::string format_sse_event(std::optional<int64_t> id, std::string_view type, std::string_view data);
// ": <text>\n\n", which clients ignore; `text` must be one line.
std::string format_sse_comment(std::string_view text);

// Where a subscriber starts, decided from its Last-Event-ID and the kept
// range of the log (see SseHub for the rules).
struct ResumePlan {
    enum class Kind {
        Live,   // nothing to replay: live events after `after`
        Replay, // kept events after `after` from the log, then live ones
        Reset,  // stream.reset first (`reason`), then live events after `after`
    };
    Kind kind = Kind::Live;
    int64_t after = 0;  // the last seq the client has (or is deemed to have)
    std::string reason; // Reset only: "malformed_id", "unknown_id", "expired_id"
};
ResumePlan plan_resume(std::optional<std::string_view> last_event_id, EventRange range);

// The hub's view of the event log: Store in the worker, a fake in tests.
class EventLog {
public:
    virtual ~EventLog() = default;
    virtual Result<EventRange> event_range() = 0;
    // Kept events with seq > `after`, oldest first, at most `limit`.
    virtual Result<std::vector<StoredEvent>> events_after(int64_t after, int limit) = 0;
};

class StoreEventLog final : public EventLog {
public:
    explicit StoreEventLog(Store& store)
        : m_store(store)
    {
    }
    Result<EventRange> event_range() override { return m_store.event_range(); }
    Result<std::vector<StoredEvent>> events_after(int64_t after, int limit) override
    {
        return m_store.events_after(after, limit);
    }

private:
    Store& m_store;
};

// The hub's bounds. The defaults are the protocol's; tests shrink them.
struct SseLimits {
    size_t backlog_bound = 1024 * 1024;    // PROTOCOL.md: "default 1 MiB"
    uint64_t keepalive_interval_ms = 15'000;
    int replay_chunk = 64;                 // events read from the log at once
    size_t replay_budget = 256 * 1024;     // bytes per subscriber per loop turn
    size_t replay_high_water = 256 * 1024; // replay pauses above this backlog
};

// The rules, for operators and clients:
// - `Last-Event-ID: N` (or, for curl and browsers' first EventSource
//   request, `?last_event_id=N`; the header wins) with N a decimal seq:
//   every kept event after N, then live ones. No gap, no repeat: each
//   subscriber's last sent seq is tracked, a live event for a subscriber
//   still replaying is skipped (it reads it from the log), and a live event
//   that does not follow its last sent one sends it back to the log.
// - N not a number, greater than the newest seq ever given (unknown), or
//   older than the oldest kept event minus one (the events after it are
//   gone): `event: stream.reset` with `id:` the newest seq and data
//   {"reason": "malformed_id" | "unknown_id" | "expired_id"}, then live
//   events only. Kept events are not replayed after a reset: the client
//   resyncs through the API anyway, and the id lets its next reconnect
//   resume from here.
// - No Last-Event-ID (or an empty one): live events only.
// - Replay goes in chunks of replay_chunk events, at most replay_budget
//   bytes per subscriber per loop turn, and pauses while the subscriber has
//   more than replay_high_water bytes unsent, so a long replay neither
//   stalls the loop nor trips the backlog bound of a client that reads.
// - A subscriber with more than backlog_bound bytes unsent when an event or
//   keepalive is due for it is dropped (connection closed, backlog
//   discarded) without slowing the others; it resumes with Last-Event-ID.
class SseHub {
public:
    // Decides whether a request may subscribe: nullopt to admit it, else the
    // answer to send (401 with WWW-Authenticate: Bearer, or 403). The
    // ApiServer's authorize(), so /api/events is guarded exactly like /api/*
    // (a Bearer token or the session cookie).
    using Authorizer = std::function<std::optional<Response>(Request const&)>;

    using Limits = SseLimits;

    SseHub(uv_loop_t*, EventLog&, Authorizer, Limits = {});
    // Closes every stream still open (flushing) and the timers.
    ~SseHub();
    SseHub(SseHub const&) = delete;
    SseHub& operator=(SseHub const&) = delete;

    // GET /api/events.
    void add_routes(Router&);

    // A new event, already committed to the log (so a subscriber that is
    // still replaying finds it there). Events should come in seq order; one
    // that does not follow a subscriber's last sent seq makes it read the
    // gap from the log. Called on the loop's thread, from the hooks of the
    // inbox, the API and the outbox loop; never from inside a stream
    // callback of this hub.
    void publish(int64_t seq, std::string_view type, std::string_view data);

    // Adds a subscriber on a stream whose head was sent. Used by the
    // handler; tests pass a stand-in stream. `peer` names it in the log.
    void subscribe(std::shared_ptr<ResponseStream>, ResumePlan const&, std::string peer);

    size_t subscriber_count() const { return m_subscribers.size(); }
    // Subscribers whose replay has not caught up with the log yet.
    size_t replaying_count() const;

private:
    struct Subscriber;
    using SubscriberPtr = std::shared_ptr<Subscriber>;

    void handle(Request const&, Responder const&);
    // Writes `bytes` unless the backlog is over its bound (then
    // drops the subscriber). False when the subscriber is gone.
    bool send(Subscriber&, std::string bytes);
    void replay_some(Subscriber&);
    void schedule_replay();
    void on_replay_turn();
    void on_keepalive_timer();
    void on_stream_closed(uint64_t id);
    void on_stream_drained(uint64_t id);
    void drop(Subscriber&, std::string const& why);
    std::vector<SubscriberPtr> snapshot() const;

    EventLog& m_log;
    Authorizer m_authorize;
    Limits m_limits;
    std::map<uint64_t, SubscriberPtr> m_subscribers;
    uint64_t m_next_id = 1;
    // Both unreferenced: the hub never keeps the loop alive by itself; it
    // has work only while sessions (which do) are open.
    // Active while a replay can go on: one chunk per subscriber per loop
    // turn, with the turn's I/O in between. (An idle handle, not a 0 ms
    // timer: libuv 1.44 runs a timer re-armed from its own callback again
    // in the same pass, which would run the whole replay in one turn.)
    UvHandle<uv_idle_t> m_replay_idle;
    UvHandle<uv_timer_t> m_keepalive_timer;
};

}
