// The worker process of one identity: start (keys, database), serve the
// connections the supervisor passes, stop gracefully. Everything runs on one
// libuv loop that this process creates for itself, in a fresh image of the
// process forked from the worker template (worker_template.h), which never
// had a loop, traffic or identity: nothing of the supervisor's memory, loop
// or signal machinery exists here, so libuv is used as in any program.
//
// Start: directory, keys.json, inbox.db; any failure is one operator line
// and exit 3, so the supervisor backs off without taking other identities
// with it. Then `ready` on the channel, and connections until SIGTERM/SIGINT
// or channel EOF (supervisor gone), which begin a graceful stop: no new
// connections, idle ones closed, requests under way answered (with
// Connection: close), the loop closed, inbox.db checkpointed, exit 0. After
// shutdown_timeout, or on a second signal, what remains is closed at once.
#include "worker.h"

#include "worker/api_server.h"
#include "common/address.h"
#include "common/channel.h"
#include "common/host_key.h"
#include "common/log.h"
#include "common/log_throttle.h"
#include "common/outbound_policy.h"
#include "common/process_title.h"
#include "common/worker_start.h"
#include "common/uv_handle.h"
#include "http/http_client.h"
#include "http/http_session.h"
#include "worker/event_sink.h"
#include "worker/https_redirect.h"
#include "worker/identity_dir.h"
#include "worker/identity_document.h"
#include "worker/inbox.h"
#include "worker/keys.h"
#include "worker/mint.h"
#include "worker/outbound_trust.h"
#include "worker/metrics_reporter.h"
#include "worker/outbox_loop.h"
#include "worker/peer_directory.h"
#include "posta_version.h"
#include "http/router.h"
#include "worker/sandbox.h"
#include "worker/sandbox_probe.h"
#include "worker/sse_hub.h"
#include "worker/store.h"
#include "worker/tls_certificate.h"
#include "worker/web_app.h"

#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <poll.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <uv.h>
#include <vector>

namespace posta {

namespace {

struct WorkerSetup {
    IdentityEntry identity;
    Config config;
    UniqueFd channel; // the worker's end of its private channel
    Policy policy;    // replaced by Policy messages after reloads
};

// Connections taken off the channel per loop turn; the poll stays readable,
// so the rest follow on the next turn, after other sessions had theirs.
constexpr size_t max_connections_per_turn = 64;
// Event log pruning: not in the start's critical path, then hourly (the log
// keeps a week or 10,000 events, so an hour's growth is small).
constexpr uint64_t prune_first_ms = 60'000;
constexpr uint64_t prune_every_ms = 3'600'000;
// A stranger can make the worker drop or refuse connections as fast as it
// connects; each kind is logged at most once per this.
constexpr Duration repeated_warning_interval = std::chrono::seconds(10);

class Worker {
public:
    explicit Worker(WorkerSetup setup)
        : m_setup(std::move(setup))
    {
    }
    Worker(Worker const&) = delete;
    Worker& operator=(Worker const&) = delete;
    ~Worker() { close_loop(); }

    int run();

private:
    enum class State { Starting, Serving, Stopping };

    Result<void> open_loop();
    Result<void> open_identity();
    void load_tls(char const* when);
    Result<void> enter_sandbox();
    Result<void> start_serving();
    void close_loop();

    void on_channel_event(int status, int events);
    bool admit(ChannelMessage& message);
    void on_connection(ChannelMessage message);
    void on_mint(ChannelMessage const& request);
    void credit_taken();
    void watch_channel(int events);
    void on_signal(int signum);
    void on_session_closed(HttpSession&);
    void forget_address(std::string const& host);
    void on_stop_timeout();
    void prune_events();
    WorkerReport collect_metrics();
    void begin_stop(char const* reason);
    void fail(std::string const& why);
    void maybe_finish_stop();
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

int Worker::run()
{
    // The loop is ready before the slow part of the start (fsync of a new
    // keys.json, a migration); a SIGTERM meanwhile waits for the loop.
    if (auto opened = open_loop(); !opened) {
        log::error("cannot start: %s", opened.error().text().c_str());
        return static_cast<int>(WorkerExit::Fatal);
    }
    if (auto opened = open_identity(); !opened) {
        log::error("cannot start: %s", opened.error().text().c_str());
        return static_cast<int>(WorkerExit::StartError);
    }
    if (auto sandboxed = enter_sandbox(); !sandboxed) {
        log::error("cannot start: sandbox: %s", sandboxed.error().text().c_str());
        return static_cast<int>(WorkerExit::StartError);
    }
    if (auto started = start_serving(); !started) {
        log::error("cannot start: %s", started.error().text().c_str());
        return static_cast<int>(WorkerExit::Fatal);
    }

    uv_run(&m_loop, UV_RUN_DEFAULT);
    close_loop();

    if (auto checkpointed = m_store->checkpoint(); !checkpointed)
        log::warn("%s", checkpointed.error().text().c_str());
    log::info("stopped");
    return static_cast<int>(m_exit);
}

// From here on the worker cannot open another identity's files or run a
// program, whatever happens to it (sandbox.h).
Result<void> Worker::enter_sandbox()
{
    // Not part of the sandbox's switch: a bound on what one identity can take
    // of the machine is not a debugging obstacle.
    auto limited = limit_open_files(m_setup.config.worker_open_files);
    if (!limited)
        return limited.error();
    m_open_files = limited.value();
    if (!m_setup.config.sandbox) {
        log::warn("SANDBOX DISABLED by the config (sandbox = false): this worker can read every file the "
                  "daemon's user can, including other identities' keys; use only for debugging");
        return {};
    }
    auto applied = apply_sandbox(m_setup.config.state_dir + "/" + m_setup.identity.slug);
    if (!applied)
        return applied.error();
    if (applied->landlock_abi == 0)
        log::warn("sandbox: %s", applied->text().c_str());
    else
        log::debug("sandbox: %s", applied->text().c_str());
    return {};
}

Result<void> Worker::open_loop()
{
    if (int rc = uv_loop_init(&m_loop); rc < 0)
        return uv_error(rc, "uv_loop_init");
    m_loop_open = true;

    for (auto [handle, signum] : { std::pair { &m_sigterm, SIGTERM }, std::pair { &m_sigint, SIGINT } }) {
        auto made = make_signal(&m_loop, this);
        if (!made)
            return made.error();
        *handle = std::move(made.value());
        int rc = uv_signal_start(handle->get(), [](uv_signal_t* h, int got) noexcept {
            if (auto* self = static_cast<Worker*>(h->data))
                self->on_signal(got);
        }, signum);
        if (rc < 0)
            return uv_error(rc, "uv_signal_start", sigabbrev_np(signum));
    }
    // Blocked since the process began (run_worker_process); one that came
    // meanwhile is delivered now and handled by the loop.
    sigset_t none;
    sigemptyset(&none);
    if (::sigprocmask(SIG_SETMASK, &none, nullptr) < 0)
        return Error::from_errno("sigprocmask");
    return {};
}

Result<void> Worker::open_identity()
{
    auto dir = prepare_identity_dir(m_setup.config.state_dir, m_setup.identity.slug);
    if (!dir)
        return dir.error();
    auto keys = Keys::load_or_create(dir.value());
    if (!keys)
        return keys.error();
    m_keys.emplace(std::move(keys.value()));
    auto store = Store::open(dir.value());
    if (!store)
        return store.error();
    m_store.emplace(std::move(store.value()));
    if (auto url = parse_identity_url(m_setup.identity.url); url && url->scheme == "https")
        m_tls_host = url->host_key;
    load_tls("at start");
    if (!m_setup.config.outbound_ca_file.empty()) {
        auto anchors = load_outbound_ca_file(m_setup.config.outbound_ca_file);
        if (!anchors)
            return anchors.error();
        m_outbound_ca = std::move(anchors.value());
    }
    return {};
}

// Loads (again) the identity's certificate and key, before the sandbox at
// start and inside it on a reload (tls/ is in the identity's folder, which
// the sandbox keeps readable). A failure is one operator line; the context
// in force stays (none at start), so the identity keeps serving plain HTTP
// and, with an earlier certificate, TLS. The supervisor hears the outcome
// for `status`.
void Worker::load_tls(char const* when)
{
    if (m_tls_host.empty())
        return;
    std::string dir = m_setup.config.state_dir + "/" + m_setup.identity.slug;
    auto loaded = load_tls_context(dir, m_tls_host);
    std::string problem;
    if (loaded) {
        m_tls = std::move(loaded.value());
        log::info("TLS certificate %s loaded %s", tls_chain_path(dir).c_str(), when);
    } else {
        problem = loaded.error().text();
        log::error("no usable TLS certificate (%s): %s; %s", when, problem.c_str(),
            m_tls ? "the previous certificate stays in use" : "TLS connections to this identity are closed");
    }
    if (auto sent = send_tls_status(m_setup.channel.get(), problem); !sent)
        log::warn("%s (is the supervisor gone?)", sent.error().text().c_str());
}

Result<void> Worker::start_serving()
{
    IdentityEntry const& identity = m_setup.identity;
    add_identity_document_route(m_router, identity, *m_keys);
    add_web_app_routes(m_router);
    m_sink.emplace(identity.url, [this](StoredEvent const& event) {
        ++m_events_published;
        if (m_events)
            m_events->publish(event.seq, event.type, event.data);
    });
    m_api = std::make_unique<ApiServer>(*m_store, *m_sink,
        ApiServer::Settings { identity.url, m_setup.config.max_body_bytes, m_setup.config.max_page_bytes, [this] {
                                 if (m_outbox)
                                     m_outbox->wake();
                             } });
    m_api->add_routes(m_router);
    m_event_log.emplace(*m_store);
    m_events = std::make_unique<SseHub>(&m_loop, *m_event_log,
        [this](Request const& request) { return m_api->authorize(request); });
    m_events->add_routes(m_router);
#ifdef POSTA_SANDBOX_PROBE
    add_sandbox_probe_route(m_router);
#endif

    auto http = HttpClient::create(&m_loop, POSTA_VERSION);
    if (!http)
        return http.error();
    m_http = std::move(http.value());
    m_http->set_trust_anchors(std::move(m_outbound_ca));
    // Every connection the worker opens passes the outbound policy, and
    // tells the outbox which machine a peer's name leads to. A refusal is
    // logged once, by whoever asked (the directory, the outbox). The outbox
    // comes later; until then there is none to tell.
    m_http->set_connect_hook([this, policy = OutboundPolicy(m_setup.config.outbound_allow)](
                                 HttpConnectAttempt const& attempt) -> std::optional<std::string> {
        if (m_outbox)
            m_outbox->note_connection(attempt);
        return policy.refusal(attempt.address, attempt.length);
    });
    m_peers = std::make_unique<PeerDirectory>(*m_store, *m_http);
    auto inbox = Inbox::create(&m_loop, identity, *m_store, *m_peers, m_setup.policy, *m_sink);
    if (!inbox)
        return inbox.error();
    m_inbox = std::move(inbox.value());
    m_inbox->add_routes(m_router);
    OutboxSettings outbox;
    outbox.own_url = identity.url;
    outbox.retry_base = m_setup.config.delivery_retry_base;
    outbox.retry_max = m_setup.config.delivery_retry_max;
    outbox.give_up = m_setup.config.delivery_give_up;
    m_outbox = std::make_unique<OutboxLoop>(&m_loop, *m_store, *m_peers, *m_http, *m_keys, *m_sink, std::move(outbox));
    m_outbox->wake(); // resume what a previous run left queued

    // A plain request for an https identity is redirected, or is an ACME
    // client's challenge; the routes see only what came over TLS.
    if (!m_tls_host.empty()) {
        m_router.set_gate([redirect = HttpsRedirect(identity.url, // canonical, as every manifest URL
                               m_setup.config.state_dir + "/" + identity.slug + "/acme-challenge")](
                              Request const& request) { return redirect.answer(request); });
    }

    m_context.loop = &m_loop;
    m_context.router = &m_router;
    // The member, not a copy: Policy messages replace its value in place.
    m_context.trusted_proxies = &m_setup.policy.trusted_proxies;
    m_context.host_key = identity.host_key;
    if (m_context.host_key.empty()) {
        // A manifest entry always has it; derive it for hand-made setups.
        auto url = parse_identity_url(identity.url);
        if (!url)
            return url.error();
        m_context.host_key = url->host_key;
    }
    m_context.max_head_bytes = m_setup.config.max_head_bytes;
    m_context.max_body_bytes = m_setup.config.max_body_bytes;
    m_context.head_timeout = m_setup.config.head_timeout;
    m_context.body_timeout = m_setup.config.body_timeout;
    m_context.on_closed = [this](HttpSession& session) { on_session_closed(session); };

    m_dropped_log = std::make_unique<LogThrottle>(&m_loop, log::Level::Warn, repeated_warning_interval);
    m_refused_log = std::make_unique<LogThrottle>(&m_loop, log::Level::Warn, repeated_warning_interval);
    m_no_tls_log = std::make_unique<LogThrottle>(&m_loop, log::Level::Warn, repeated_warning_interval);
    m_stop_timer = make_timer(&m_loop, this);
    m_prune_timer = make_timer(&m_loop, this);
    uv_timer_start(m_prune_timer.get(), [](uv_timer_t* h) noexcept {
        if (auto* self = static_cast<Worker*>(h->data))
            self->prune_events();
    }, prune_first_ms, prune_every_ms);
    auto poll = make_poll(&m_loop, m_setup.channel.get(), this);
    if (!poll)
        return poll.error();
    m_channel_poll = std::move(poll.value());
    watch_channel(UV_READABLE);
    if (m_channel_events == 0)
        return Error::message("uv_poll_start", "cannot watch the channel", "worker channel");

    m_state = State::Serving;
    if (auto sent = send_ready(m_setup.channel.get()); !sent)
        log::warn("%s (is the supervisor gone?)", sent.error().text().c_str()); // EOF follows
    log::info("serving %s (public key %s)", identity.url.c_str(), m_keys->public_key_b64().c_str());
    m_reporter = std::make_unique<MetricsReporter>(&m_loop, m_setup.channel.get(),
        [this] {
            uint64_t activity = m_sessions_opened + m_sessions_closed + m_events_published + m_inbox->answered();
            for (uint64_t count : m_context.responses_by_class)
                activity += count;
            return activity;
        },
        [this] { return collect_metrics(); });
    return {};
}

WorkerReport Worker::collect_metrics()
{
    WorkerReport report;
    report.responses = m_context.responses_by_class;
    report.deliveries_accepted = m_inbox->accepted();
    report.deliveries_duplicate = m_inbox->duplicates();
    report.deliveries_refused = m_inbox->refusals();
    if (auto counts = m_store->outbox_counts())
        m_outbox_counts = counts.value();
    else
        log::warn("metrics: cannot count the outbox: %s", counts.error().text().c_str());
    report.outbox_queued = static_cast<uint64_t>(m_outbox_counts.queued);
    report.outbox_delivered = static_cast<uint64_t>(m_outbox_counts.delivered);
    report.outbox_failed = static_cast<uint64_t>(m_outbox_counts.failed);
    report.outbox_oldest_queued_ms = static_cast<uint64_t>(m_outbox_counts.oldest_queued_at_ms);
    report.event_subscribers = m_events->subscriber_count();
    report.open_connections = m_sessions.size();
    return report;
}

void Worker::close_loop()
{
    if (!m_loop_open)
        return;
    m_reporter.reset(); // it reads the inbox, the hub and the store
    for (auto* session : sessions())
        session->abort("worker exiting");
    // The inbox's waiters go with the directory, the directory's fetches
    // with the client, which closes its handles for the uv_run below.
    m_inbox.reset();
    m_outbox.reset(); // its attempts stay queued in inbox.db
    m_events.reset(); // its streams' sessions are closing already
    m_peers.reset();
    m_http.reset();
    m_dropped_log.reset(); // logs what it still holds
    m_refused_log.reset();
    m_no_tls_log.reset();
    m_channel_poll.close();
    m_stop_timer.close();
    m_prune_timer.close();
    m_sigterm.close();
    m_sigint.close();
    uv_run(&m_loop, UV_RUN_DEFAULT); // runs the close callbacks
    if (int rc = uv_loop_close(&m_loop); rc != 0)
        log::error("uv_loop_close: %s (a handle was left open)", uv_strerror(rc));
    m_loop_open = false;
}

void Worker::watch_channel(int events)
{
    if (!m_channel_poll || events == m_channel_events)
        return;
    int rc = uv_poll_start(m_channel_poll.get(), events, [](uv_poll_t* h, int status, int got) noexcept {
        if (auto* self = static_cast<Worker*>(h->data))
            self->on_channel_event(status, got);
    });
    if (rc < 0) {
        fail(std::string("uv_poll_start on the worker channel: ") + uv_strerror(rc));
        return;
    }
    m_channel_events = events;
}

void Worker::on_channel_event(int status, int events)
{
    if (status < 0) {
        // The supervisor's end is gone (it closed with our credits unread,
        // which the kernel reports as a reset): stop as on EOF.
        begin_stop("the supervisor's end of the channel failed");
        return;
    }
    if (!(events & UV_READABLE)) {
        credit_taken();
        return;
    }
    // Take what is waiting first and credit it at once, then serve it: the
    // supervisor passes more only once it has our credits.
    std::vector<ChannelMessage> connections;
    uint32_t taken = 0;
    char const* stop_reason = nullptr;
    while (taken < max_connections_per_turn) {
        auto received = receive_message(m_setup.channel.get());
        if (!received) {
            if (received.error().is(ErrorDomain::Errno, ECONNRESET)) {
                stop_reason = "the supervisor's end of the channel was reset";
                break;
            }
            fail("bad message from the supervisor: " + received.error().text());
            return;
        }
        if (!received.value())
            break; // nothing more waiting
        ChannelMessage& message = *received.value();
        if (message.type == MessageType::Connection) {
            // Refused ones are closed at once, so that a flood from one
            // address never holds a turn's worth of fds.
            ++taken;
            if (admit(message))
                connections.push_back(std::move(message));
            continue;
        }
        if (message.type == MessageType::Closed) {
            stop_reason = "the supervisor closed the channel";
            break;
        }
        if (message.type == MessageType::Policy) {
            auto policy = Policy::deserialize(message.prefix);
            if (!policy) {
                fail("bad policy from the supervisor: " + policy.error().text());
                return;
            }
            m_setup.policy = std::move(policy.value());
            log::info("policy updated: %u deliveries per minute, %zu allow and %zu deny patterns, %zu trusted proxies",
                m_setup.policy.rate_per_minute, m_setup.policy.acl.allow.size(), m_setup.policy.acl.deny.size(),
                m_setup.policy.trusted_proxies.size());
            // A Policy message is how a reload reaches a kept worker: new
            // certificate files take effect for new connections now.
            load_tls("on reload");
            continue;
        }
        if (message.type == MessageType::Mint) {
            on_mint(message);
            continue;
        }
        fail("unexpected message type " + std::to_string(static_cast<uint32_t>(message.type))
            + " from the supervisor");
        return;
    }
    m_untaken += taken;
    if (!stop_reason)
        credit_taken();
    // Connections taken before an EOF are served too, as part of the stop.
    for (auto& connection : connections)
        on_connection(std::move(connection));
    if (stop_reason)
        begin_stop(stop_reason);
}

// The owner asked for a secret through the supervisor's control socket:
// mint it here, in the one process that may write this identity's database,
// and answer. The secret is never logged. A channel too full for the answer
// is a supervisor that stopped reading; it times the request out itself.
void Worker::on_mint(ChannelMessage const& request)
{
    auto minted = mint_secret(*m_store, request.mint, m_setup.identity.url);
    if (!minted) {
        log::warn("cannot mint an owner secret: %s", minted.error().text().c_str());
        if (auto sent = send_minted(m_setup.channel.get(), request.count, MintOutcome::Failed, minted.error().text());
            !sent)
            log::warn("%s", sent.error().text().c_str());
        return;
    }
    auto sent = send_minted(m_setup.channel.get(), request.count, MintOutcome::Minted, minted.value());
    sodium_memzero(minted.value().data(), minted.value().size());
    if (!sent)
        log::warn("cannot answer a mint request: %s", sent.error().text().c_str());
    else
        log::info("minted an owner's %s at the supervisor's request", mint_kind_name(request.mint));
}

void Worker::credit_taken()
{
    if (m_untaken > 0) {
        auto sent = send_taken(m_setup.channel.get(), m_untaken);
        if (sent) {
            m_untaken = 0;
        } else if (!sent.error().is(ErrorDomain::Errno, EAGAIN)) {
            // The supervisor is gone; its EOF follows on the channel.
            log::warn("%s", sent.error().text().c_str());
            m_untaken = 0;
        }
    }
    // A full channel: retry when it drains, or the credits would be lost
    // and the supervisor would stop passing connections.
    watch_channel(m_untaken > 0 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

// Whether `message`'s connection is to be served: it has its fd, and its
// client address is under max_connections_per_address or a trusted proxy
// (counted from here on). Otherwise it is dropped or refused here, with a throttled warning.
bool Worker::admit(ChannelMessage& message)
{
    auto const* peer = reinterpret_cast<sockaddr const*>(&message.peer);
    std::string address = format_address(peer, message.peer_len);
    if (!message.fd) {
        // The client sees its connection closed without an answer.
        m_dropped_log->log(address + ": connection dropped: this worker has all of its "
            + std::to_string(m_open_files) + " file descriptors open (" + std::to_string(m_sessions.size())
            + " connections); raise worker_open_files if this load is legitimate");
        return false;
    }
    // A trusted proxy is many clients on one address (an HTTP front's
    // upstream connections): counted, never capped.
    size_t& from_host = m_sessions_per_address[format_host(peer, message.peer_len)];
    if (from_host >= m_setup.config.max_connections_per_address
        && !any_range_contains(m_setup.policy.trusted_proxies, peer, message.peer_len)) {
        m_refused_log->log(address + ": connection refused: " + std::to_string(from_host)
            + " connections from this address are open already (max_connections_per_address); raise it if "
              "many legitimate clients share one address");
        // A TLS client could not read an HTTP answer before its handshake.
        if (message.kind == ConnectionKind::Plain) {
            ++m_context.responses_by_class[3]; // a 429, written without a session
            HttpSession::refuse(std::move(message.fd), address,
                Rejection { 429, "too_many_connections",
                    "this address has too many connections open; close some first" });
        }
        return false;
    }
    ++from_host;
    return true;
}

void Worker::on_connection(ChannelMessage message)
{
    auto const* peer = reinterpret_cast<sockaddr const*>(&message.peer);
    std::string address = format_address(peer, message.peer_len);
    std::string host = format_host(peer, message.peer_len);
    SSL_CTX* tls = nullptr;
    if (message.kind == ConnectionKind::Tls) {
        tls = m_tls.get();
        if (!tls) {
            // Routed here by its SNI, but there is no certificate to answer
            // with: the client sees the connection closed (its fd, here).
            forget_address(host);
            m_no_tls_log->log(address + ": TLS connection closed: this identity has no usable certificate in "
                + m_setup.config.state_dir + "/" + m_setup.identity.slug + "/tls/ (see its error line)");
            return;
        }
    }
    auto session = HttpSession::create(m_context, std::move(message.fd), address, host, std::move(message.prefix), tls);
    if (!session) {
        forget_address(host);
        log::warn("%s: cannot serve connection: %s", address.c_str(), session.error().text().c_str());
        return;
    }
    m_sessions.insert(session.value());
    ++m_sessions_opened;
}

void Worker::forget_address(std::string const& host)
{
    if (auto it = m_sessions_per_address.find(host); it != m_sessions_per_address.end()) {
        if (--it->second == 0)
            m_sessions_per_address.erase(it);
    }
}

void Worker::on_signal(int signum)
{
    if (m_state == State::Stopping) {
        log::warn("%s again: closing %zu connections now", sigabbrev_np(signum), m_sessions.size());
        for (auto* session : sessions())
            session->abort("worker stopping at once");
        return;
    }
    begin_stop(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void Worker::begin_stop(char const* reason)
{
    if (m_state == State::Stopping)
        return;
    m_state = State::Stopping;
    log::info("stopping (%s): %zu connections to finish", reason, m_sessions.size());
    // No new connections: what the supervisor still queued on the channel is
    // closed with it when we exit.
    m_channel_poll.close();
    for (auto* session : sessions())
        session->stop();
    if (m_stop_timer) {
        auto timeout = static_cast<uint64_t>(m_setup.config.shutdown_timeout.count());
        uv_timer_start(m_stop_timer.get(), [](uv_timer_t* h) noexcept {
            if (auto* self = static_cast<Worker*>(h->data))
                self->on_stop_timeout();
        }, timeout, 0);
    }
    maybe_finish_stop();
}

void Worker::fail(std::string const& why)
{
    log::error("%s; exiting", why.c_str());
    m_exit = WorkerExit::Fatal;
    begin_stop("fatal error");
    for (auto* session : sessions())
        session->abort("worker failed");
}

void Worker::on_stop_timeout()
{
    log::warn("%zu connections still busy after shutdown_timeout; closing them", m_sessions.size());
    for (auto* session : sessions())
        session->abort("shutdown_timeout passed");
}

void Worker::prune_events()
{
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    auto pruned = m_store->prune_events(now.count());
    if (!pruned)
        log::warn("cannot prune the event log: %s", pruned.error().text().c_str());
    else if (pruned.value() > 0)
        log::info("pruned %lld events from the event log", static_cast<long long>(pruned.value()));
}

void Worker::on_session_closed(HttpSession& session)
{
    m_sessions.erase(&session);
    ++m_sessions_closed;
    if (m_reporter)
        m_reporter->note_change();
    forget_address(session.peer_host());
    maybe_finish_stop();
}

void Worker::maybe_finish_stop()
{
    if (m_state != State::Stopping || !m_sessions.empty())
        return;
    // Closing our last handles lets uv_run() return. The HttpClient keeps
    // its handles but lets them go idle.
    if (m_http)
        m_http->close();
    m_channel_poll.close();
    m_stop_timer.close();
    m_prune_timer.close();
    m_sigterm.close();
    m_sigint.close();
}

// The start message is the first thing on the channel; a supervisor that
// does not send it within this bound is not ours.
constexpr int start_timeout_ms = 30'000;
// How long a new worker waits to be handed to the supervisor (a few
// microseconds normally: the time its middle process takes to exit).
constexpr int reparent_timeout_ms = 5'000;

Result<WorkerStart> receive_start(int channel)
{
    struct stat st {};
    if (::fstat(channel, &st) < 0 || !S_ISSOCK(st.st_mode))
        return Error::message("worker mode", "fd 3 is not a channel; this mode is internal to posta-server serve");
    pollfd p { channel, POLLIN, 0 };
    int ready = ::poll(&p, 1, start_timeout_ms);
    if (ready < 0)
        return Error::from_errno("poll", "worker channel");
    if (ready == 0)
        return Error::message("worker mode", "no start message on the channel");
    auto message = receive_message(channel);
    if (!message)
        return message.error();
    if (!message.value() || message.value()->type != MessageType::Start)
        return Error::message("worker mode", "the channel's first message is not a start");
    return WorkerStart::deserialize(message.value()->prefix);
}

// libsodium and libcurl were initialised by the template (worker_template.h).
int run_worker(WorkerSetup setup)
{
    log::configure(setup.config.log_level, setup.config.log_format);
    Worker worker(std::move(setup));
    return worker.run();
}

}

int run_worker_on_channel(std::string const& slug)
{
    UniqueFd channel(worker_channel_fd);
    auto start = receive_start(channel.get());
    if (!start) {
        log::error("cannot start: %s", start.error().text().c_str());
        return static_cast<int>(WorkerExit::Fatal);
    }
    if (start->identity.slug != slug) {
        log::error("cannot start: the start message is for %s", start->identity.slug.c_str());
        return static_cast<int>(WorkerExit::Fatal);
    }
    // The template's middle process exits right after forking us, and we
    // become the supervisor's child (it is a subreaper); only then can the
    // supervisor's death be ours too, even after kill -9. A worker whose
    // supervisor died meanwhile was left to another parent and ends.
    for (int waited_ms = 0; ::getppid() != start->supervisor && waited_ms < reparent_timeout_ms; ++waited_ms)
        ::usleep(1000);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != start->supervisor)
        return static_cast<int>(WorkerExit::Clean);
    return run_worker(WorkerSetup { std::move(start->identity), std::move(start->config), std::move(channel),
        std::move(start->policy) });
}

}
