// OutboxLoop: the sending side of one identity's worker (PROTOCOL.md,
// "Outbox"). It takes queued deliveries from the Store, resolves each
// recipient's document through the PeerDirectory, signs the envelope with
// the identity's Keys and POSTs it over the worker's HttpClient. All its
// state that matters is in inbox.db, so a restart or kill -9 resumes the
// queue; in memory it keeps only the requests in flight, one uv timer and the
// per-host circuits. The Store, PeerDirectory, HttpClient, Keys and
// EventSink are the worker's and must outlive it.
#pragma once

#include "common/duration.h"
#include "common/lifetime.h"
#include "common/result.h"
#include "common/uv_handle.h"
#include "http/http_client.h"
#include "worker/event_sink.h"
#include "worker/machine_addresses.h"
#include "worker/store.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <uv.h>

namespace posta {

class Keys;
class PeerDirectory;
struct Peer;

// How an attempt ended, decided from the answer or the transport error.
enum class AttemptOutcome : uint8_t {
    Delivered, // 200, 202
    Retry,     // 404, 408, 425, 429, 5xx, connect/TLS/timeout and other transport errors
    Failed,    // any other status: permanent, kept with its body
    Abandoned, // the request was cancelled (the worker is stopping): nothing recorded
};

// The outcome of an HTTP status (100..599).
AttemptOutcome classify_status(int status);
// The outcome of a request that got no answer.
AttemptOutcome classify_error(HttpClientError);

// The delay before retry number `attempts` (1: the first retry): `base`
// doubled per earlier attempt, capped at `max`, then jittered down by up to a
// quarter with `jitter` in [0, 1), so the result lies in
// [3/4 * nominal, nominal] and never exceeds `max`.
Duration retry_delay(int64_t attempts, Duration base, Duration max, double jitter);

// The seconds of a Retry-After header (delta-seconds only; an HTTP date is
// not honoured), nullopt when absent or not a number.
std::optional<int64_t> parse_retry_after(std::string_view value);

// The backoff of one destination host as a whole: after `threshold`
// consecutive retryable failures it opens; while open only one probe at a
// time goes to the host, no earlier than the probe time, which moves on the
// retry schedule after each failed probe. Only a delivery closes it.
class HostCircuit {
public:
    explicit HostCircuit(int threshold = 5)
        : m_threshold(threshold)
    {
    }
    bool open() const { return m_failures >= m_threshold; }
    int consecutive_failures() const { return m_failures; }
    // Whether an attempt to the host may start at `now_ms` with `in_flight`
    // requests to it already running.
    bool allows(int64_t now_ms, size_t in_flight) const
    {
        return !open() || (in_flight == 0 && now_ms >= m_probe_at_ms);
    }
    // When the next probe may go (meaningful while open).
    int64_t probe_at_ms() const { return m_probe_at_ms; }
    void on_success() { m_failures = 0, m_probe_at_ms = 0; }
    // A retryable failure; `delay` is the next step of the retry schedule
    // for the circuit (retry_delay of the failures past the threshold).
    void on_failure(int64_t now_ms, Duration base, Duration max, double jitter);

private:
    int m_threshold;
    int m_failures = 0;
    int64_t m_probe_at_ms = 0;
};

struct OutboxSettings {
    std::string own_url; // canonical; the envelope's "from"
    Duration retry_base = std::chrono::seconds(30);
    Duration retry_max = std::chrono::hours(6);
    Duration give_up = std::chrono::hours(72);
    size_t max_in_flight = 16;
    size_t max_per_host = 4; // per destination host: the recipient's machine (its address)
    int circuit_threshold = 5;
    // last_error is a printable excerpt of at most this many bytes of the
    // answer's body or the transport error (common/excerpt.h).
    size_t kept_error_bytes = 256;
};

class OutboxLoop {
public:
    using Settings = OutboxSettings;

    // Each delivery.updated event goes to `events` after its commit.
    OutboxLoop(uv_loop_t*, Store&, PeerDirectory&, HttpClient&, Keys const&, EventSink& events, Settings);
    // Abandons the attempts in flight (their deliveries stay queued in the
    // store and go again after the next start) and closes the timer.
    ~OutboxLoop();
    OutboxLoop(OutboxLoop const&) = delete;
    OutboxLoop& operator=(OutboxLoop const&) = delete;

    // Looks at the queue on the next loop turn: a message was queued, or the
    // worker started. Cheap to call often; never runs the scan inline.
    void wake();

    size_t in_flight() const { return m_in_flight.size(); }

    // Every connection attempt of the worker's HttpClient (the worker's
    // connect hook calls it), so a recipient's machine is known by the
    // address its name led to.
    void note_connection(HttpConnectAttempt const& attempt) { m_machines.note(attempt); }

private:
    struct Attempt {
        PendingDelivery delivery;
        OutgoingContent content; // read at start(), moved into the request by send()
        std::string host;
        HttpRequestId request = 0;
    };

    void scan();
    // Reads the message's content and starts the attempt; false, with
    // nothing started, when the store could not give the content.
    bool start(PendingDelivery, std::string host);
    void send(std::string const& recipient, Peer const&);
    void finish(std::string const& recipient, AttemptOutcome, std::optional<int> status, std::string error,
        std::optional<int64_t> retry_after_s);
    void arm(std::optional<int64_t> at_ms);
    std::string destination_host(std::string const& recipient) const;
    size_t host_in_flight(std::string const& host) const;
    double jitter();

    uv_loop_t* m_loop;
    Store& m_store;
    PeerDirectory& m_peers;
    HttpClient& m_http;
    Keys const& m_keys;
    EventSink& m_events;
    Settings m_settings;
    UvHandle<uv_timer_t> m_timer;
    std::unordered_map<std::string, Attempt> m_in_flight; // by recipient URL
    std::unordered_map<std::string, HostCircuit> m_circuits; // by destination_host()
    MachineAddresses m_machines;
    Lifetime m_lifetime; // callbacks of the client and the directory hold its guard
};

}
