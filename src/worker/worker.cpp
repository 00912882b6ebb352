// The worker process of one identity (worker.h): its life. Start (keys,
// database, sandbox), serve the connections the supervisor passes
// (worker_services.cpp, worker_channel.cpp), stop gracefully. Everything
// runs on one libuv loop that this process creates for itself, in a fresh
// image of the process forked from the worker template (worker_template.h),
// which never had a loop, traffic or identity: nothing of the supervisor's
// memory, loop or signal machinery exists here, so libuv is used as in any
// program.
//
// Start: directory, keys.json, inbox.db; any failure is one operator line
// and exit 3, so the supervisor backs off without taking other identities
// with it. Then `ready` on the channel, and connections until SIGTERM/SIGINT
// or channel EOF (supervisor gone), which begin a graceful stop: no new
// connections, idle ones closed, requests under way answered (with
// Connection: close), the loop closed, inbox.db checkpointed, exit 0. After
// shutdown_timeout, or on a second signal, what remains is closed at once.
#include "worker.h"

#include "common/duration.h"
#include "worker/api_server.h"
#include "ipc/channel.h"
#include "common/host_key.h"
#include "common/log.h"
#include "common/log_throttle.h"
#include "common/process_title.h"
#include "ipc/worker_start.h"
#include "common/uv_handle.h"
#include "http/http_client.h"
#include "worker/identity_dir.h"
#include "worker/inbox.h"
#include "worker/keys.h"
#include "worker/outbound_trust.h"
#include "worker/metrics_reporter.h"
#include "worker/outbox_loop.h"
#include "worker/peer_directory.h"
#include "worker/sandbox.h"
#include "worker/sse_hub.h"
#include "worker/store.h"
#include "worker/tls_certificate.h"

#include <csignal>
#include <cstring>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

namespace posta {

Worker::Worker(WorkerSetup setup)
    : m_setup(std::move(setup))
{
}

Worker::~Worker() { close_loop(); }

int Worker::run()
{
    // The loop is ready before the slow part of the start (fsync of a new
    // keys.json, a migration); a SIGTERM meanwhile waits for the loop. A
    // failure of the identity's own files or sandbox is a start error (the
    // supervisor backs off); of the loop or the serving, fatal.
    struct Step {
        Result<void> (Worker::*run)();
        char const* what;
        WorkerExit exit;
    };
    static constexpr Step steps[] = {
        { &Worker::open_loop, "", WorkerExit::Fatal },
        { &Worker::open_identity, "", WorkerExit::StartError },
        { &Worker::enter_sandbox, "sandbox: ", WorkerExit::StartError },
        { &Worker::start_serving, "", WorkerExit::Fatal },
    };
    for (Step const& step : steps) {
        if (auto done = (this->*step.run)(); !done) {
            log::error("cannot start: %s%s", step.what, done.error().text().c_str());
            return static_cast<int>(step.exit);
        }
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
    auto pruned = m_store->prune_events(wall_clock_ms());
    if (!pruned)
        log::warn("cannot prune the event log: %s", pruned.error().text().c_str());
    else if (pruned.value() > 0)
        log::info("pruned %lld events from the event log", static_cast<long long>(pruned.value()));
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

namespace {

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
    log::configure(setup.policy.log_level, setup.policy.log_format);
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
