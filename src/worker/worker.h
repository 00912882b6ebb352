// The worker: one process per identity, forked by the worker template
// (worker_template.h) and handed to the supervisor. It opens its identity's
// keys.json and inbox.db itself, reports ready on its channel, and serves the
// connections the supervisor passes to it until told to stop. One Worker
// object per process owns the loop and every service of the identity.
//
// Its code is in three files: worker.cpp, its life (start, sandbox, stop,
// the process's entry); worker_services.cpp, the services wired together
// for serving; worker_channel.cpp, what comes on the channel from the
// supervisor (connections, policy, mint requests) and the sessions made of it.
#pragma once

#include "config/config.h"
#include "common/duration.h"
#include "common/exit_codes.h"
#include "config/manifest.h"
#include "ipc/policy.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"
#include "http/http_session.h"
#include "http/router.h"
#include "worker/event_sink.h"
#include "worker/keys.h"
#include "worker/sse_hub.h"
#include "worker/store.h"
#include "worker/tls_certificate.h"

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <uv.h>
#include <vector>

namespace posta {

class ApiServer;
class HttpClient;
class Inbox;
class LogThrottle;
class MetricsReporter;
class OutboxLoop;
class PeerDirectory;
struct ChannelMessage;
struct WorkerReport;

// The forked worker's life: takes the start message off its channel (fd 3),
// waits to be the supervisor's child, and serves. Returns the process exit
// code (common/exit_codes.h).
int run_worker_on_channel(std::string const& slug);

struct WorkerSetup {
    IdentityEntry identity;
    Config config;
    UniqueFd channel; // the worker's end of its private channel
    // Replaced by Policy messages after reloads; the reloadable config keys
    // are read from here, never from `config`.
    Policy policy;
};

class Worker {
public:
    explicit Worker(WorkerSetup setup);
    Worker(Worker const&) = delete;
    Worker& operator=(Worker const&) = delete;
    ~Worker();

    int run();

private:
    enum class State { Starting, Serving, Stopping };

    // Its life (worker.cpp).
    Result<void> open_loop();
    Result<void> open_identity();
    void load_tls(char const* when);
    Result<void> enter_sandbox();
    void close_loop();
    void on_signal(int signum);
    void on_stop_timeout();
    void prune_events();
    void begin_stop(char const* reason);
    void fail(std::string const& why);
    void maybe_finish_stop();

    // Its services (worker_services.cpp).
    Result<void> start_serving();
    WorkerReport collect_metrics();

    // Its channel and sessions (worker_channel.cpp).
    void watch_channel(int events);
    void on_channel_event(int status, int events);
    void credit_taken();
    void on_mint(ChannelMessage const& request);
    bool admit(ChannelMessage& message);
    void take_connection(ChannelMessage message);
    void apply_policy();
    void forget_address(std::string const& host);
    void on_session_closed(HttpSession&);
    std::vector<HttpSession*> sessions() const { return { m_sessions.begin(), m_sessions.end() }; }

    WorkerSetup m_setup;
    State m_state = State::Starting;
    WorkerExit m_exit = WorkerExit::Clean;

    uv_loop_t m_loop {};
    bool m_loop_open = false;
    UvHandle<uv_signal_t> m_sigterm;
    UvHandle<uv_signal_t> m_sigint;
    UvHandle<uv_poll_t> m_channel_poll;
    int m_channel_events = 0;
    // Connections taken off the channel but not yet credited back with
    // Taken: the supervisor passes at most max_pending uncredited ones.
    uint32_t m_untaken = 0;
    size_t m_open_files = 0; // RLIMIT_NOFILE, for the log
    UvHandle<uv_timer_t> m_stop_timer;
    // Trims the event log to what PROTOCOL.md keeps, a minute after the
    // start and then every hour.
    UvHandle<uv_timer_t> m_prune_timer;

    std::optional<Keys> m_keys;
    std::optional<Store> m_store;
    // The host of the identity's URL when it is https (else empty), and its
    // TLS server context once a certificate loaded; new TLS connections use
    // the one in force, and a replaced one lives on in the connections made
    // from it.
    std::string m_tls_host;
    SslContext m_tls;
    std::unique_ptr<LogThrottle> m_no_tls_log; // TLS connections closed for want of a certificate
    std::string m_outbound_ca; // outbound_ca_file's certificates, read before the sandbox, until m_http has them
    // Every event goes out through this one sink, to m_events.
    std::optional<EventSink> m_sink;
    std::unique_ptr<ApiServer> m_api;
    std::optional<StoreEventLog> m_event_log;
    // Reset in this order by close_loop(), before the loop closes: the
    // publishers (inbox, outbox) before the hub they publish to, the outbox
    // before the directory and the client it uses.
    std::unique_ptr<Inbox> m_inbox;
    std::unique_ptr<OutboxLoop> m_outbox;
    std::unique_ptr<SseHub> m_events;
    std::unique_ptr<PeerDirectory> m_peers;
    std::unique_ptr<HttpClient> m_http;
    Router m_router;
    SessionContext m_context;
    std::unordered_set<HttpSession*> m_sessions;
    // Open sessions per client address (HttpSession::peer_host), for
    // max_connections_per_address.
    std::unordered_map<std::string, size_t> m_sessions_per_address;
    std::unique_ptr<LogThrottle> m_dropped_log; // connections without a free fd
    std::unique_ptr<LogThrottle> m_refused_log; // connections over the per-address cap
    // What the metrics report's activity adds up besides the counters it
    // reports: every change of the open sessions and of the store that
    // reached the event log.
    uint64_t m_sessions_opened = 0;
    uint64_t m_sessions_closed = 0;
    uint64_t m_events_published = 0;
    OutboxCounts m_outbox_counts; // as last read, kept when a read fails
    std::unique_ptr<MetricsReporter> m_reporter;
};

}
