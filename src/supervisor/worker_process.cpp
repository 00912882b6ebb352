#include "worker_process.h"

#include "supervisor/child_signal.h"

#include "common/duration.h"
#include "ipc/channel.h"
#include "common/log.h"
#include "ipc/worker_start.h"
#include "supervisor/reply.h"

#include <csignal>
#include <cstring>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

namespace posta {

namespace {

// How long a connection may wait in the supervisor for a worker that has
// max_pending connections it has not taken yet. A healthy worker takes a
// burst within milliseconds; a stopped one gets its clients a 503 this soon.
constexpr uint64_t max_wait_ms = 1000;
// How many connections may wait so, as a multiple of max_pending.
constexpr size_t max_waiting_factor = 16;
// Owner-secret requests (control socket `token`): a worker mints one in
// milliseconds, or in up to the database's 5 s busy_timeout when another
// writer holds inbox.db; one that has not answered by then is hung. The
// requests are an operator's, so a few in flight suffice.
constexpr uint64_t mint_timeout_ms = 10000;
constexpr size_t max_mints_in_flight = 8;

std::string describe_exit(int wait_status)
{
    if (WIFEXITED(wait_status))
        return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
    if (WIFSIGNALED(wait_status)) {
        int sig = WTERMSIG(wait_status);
        return "killed by signal " + std::to_string(sig) + " (" + sigabbrev_np(sig) + ")";
    }
    return "ended with wait status " + std::to_string(wait_status);
}

}

WorkerProcess::WorkerProcess(uv_loop_t* loop, TemplateProcess& forker, IdentityEntry identity, Config const& config,
    Policy policy, StateObserver observer)
    : m_loop(loop)
    , m_template(forker)
    , m_identity(std::move(identity))
    , m_config(config)
    , m_policy(std::move(policy))
    , m_policy_bytes(m_policy.serialize())
    , m_observer(std::move(observer))
    , m_mints(max_mints_in_flight)
{
    m_timer = make_timer(loop, this);
    m_waiting_timer = make_timer(loop, this);
    m_mint_timer = make_timer(loop, this);
}

WorkerProcess::~WorkerProcess()
{
    // The owner only drops a worker once it was reaped, or at exit after
    // SIGKILL; never leave a live worker unsupervised.
    if (m_pid > 0)
        signal_child(m_pid, SIGKILL);
}

void WorkerProcess::start()
{
    m_state = State::Starting;
    spawn();
}

void WorkerProcess::spawn()
{
    auto channel = make_channel();
    if (!channel) {
        log::error("%s: cannot start worker: %s", m_identity.slug.c_str(), channel.error().text().c_str());
        schedule_restart(m_backoff.current());
        return;
    }
    auto [ours, theirs] = std::move(channel.value());
    auto poll = make_poll(m_loop, ours.get(), this);
    if (!poll) {
        log::error("%s: cannot start worker: %s", m_identity.slug.c_str(), poll.error().text().c_str());
        schedule_restart(m_backoff.current());
        return;
    }
    // The channel is new and empty, so the start always fits; the worker
    // reads it once it runs.
    WorkerStart start { m_identity, m_config, m_policy, ::getpid() };
    if (auto sent = send_start(ours.get(), start.serialize()); !sent) {
        log::error("%s: cannot start worker: %s", m_identity.slug.c_str(), sent.error().text().c_str());
        schedule_restart(m_backoff.current());
        return;
    }
    m_state = State::Starting;
    m_started_at_ms = uv_now(m_loop);
    m_in_flight = 0;
    m_tls_problem.clear(); // the new process says its own
    m_channel = std::move(ours);
    m_channel_poll = std::move(poll.value());
    m_channel_events = 0;
    watch_channel(false);
    // Last: the answer may come at once (no template could be started).
    m_forking = true;
    m_template.fork_worker(m_identity.slug, std::move(theirs),
        [this, guard = m_lifetime.guard()](Result<pid_t> forked) {
            if (guard)
                on_forked(std::move(forked));
            else if (forked)
                signal_child(forked.value(), SIGKILL); // nobody supervises it: it must not run
        });
}

void WorkerProcess::on_forked(Result<pid_t> forked)
{
    m_forking = false;
    if (!forked) {
        log::error("%s: cannot start worker: %s", m_identity.slug.c_str(), forked.error().text().c_str());
        drop_channel();
        if (m_state == State::Stopping)
            m_state = State::Exited;
        else
            schedule_restart(m_backoff.current());
        return;
    }
    m_pid = forked.value();
    if (m_state == State::Stopping) {
        signal_child(m_pid, SIGTERM); // stop() came while it was being forked
        return;
    }
    log::info("%s: worker %d started for %s", m_identity.slug.c_str(), m_pid, m_identity.url.c_str());
}

void WorkerProcess::watch_channel(bool writable)
{
    // Each uv_poll_start takes the fd out of epoll and puts it back (two
    // epoll_ctl): only a change of what is watched is worth them.
    int const wanted = UV_READABLE | (writable ? UV_WRITABLE : 0);
    if (wanted == m_channel_events)
        return;
    m_channel_events = wanted;
    uv_poll_start(m_channel_poll.get(), wanted,
        [](uv_poll_t* handle, int status, int events) noexcept {
            auto* self = static_cast<WorkerProcess*>(handle->data);
            if (!self)
                return;
            if (status == 0 && (events & UV_WRITABLE))
                self->flush_waiting();
            if (self->m_channel_poll && (status < 0 || (events & UV_READABLE)))
                self->on_channel_readable();
        });
}

void WorkerProcess::on_channel_readable()
{
    // The worker speaks only after its pid was answered: learn it first.
    if (m_forking) {
        m_template.collect_answers();
        if (!m_channel)
            return; // the template died and answered the fork with its error
    }
    for (;;) {
        auto message = receive_message(m_channel.get());
        if (!message) {
            // A malformed message from our own child is a broken invariant
            // of that worker, not of the daemon: kill it and let the restart
            // policy take over.
            log::error("%s: worker %d: %s; killing it", m_identity.slug.c_str(), m_pid,
                message.error().text().c_str());
            signal_child(m_pid, SIGKILL);
            drop_channel();
            return;
        }
        if (!message->has_value())
            return;
        switch ((*message)->type) {
        case MessageType::Ready:
            if (m_state == State::Starting) {
                m_state = State::Ready;
                m_ready_at_ms = uv_now(m_loop);
                log::info("%s: worker %d ready", m_identity.slug.c_str(), m_pid);
                m_observer(*this);
                flush_waiting(); // what came during the first start
                if (!m_channel_poll)
                    return;
            }
            break;
        case MessageType::Taken:
            m_in_flight -= std::min(m_in_flight, (*message)->count);
            flush_waiting();
            if (!m_channel_poll)
                return;
            break;
        case MessageType::TlsStatus:
            m_tls_problem = std::move((*message)->prefix);
            break;
        case MessageType::Minted:
            on_minted(**message);
            break;
        case MessageType::Metrics:
            on_metrics((*message)->prefix);
            break;
        case MessageType::Closed:
            // The worker is exiting; SIGCHLD tells how.
            drop_channel();
            return;
        default:
            log::error("%s: worker %d sent an unexpected message; killing it", m_identity.slug.c_str(), m_pid);
            signal_child(m_pid, SIGKILL);
            drop_channel();
            return;
        }
    }
}

Result<void> WorkerProcess::mint(MintKind kind, MintRequests::Done done)
{
    if (m_state != State::Ready || !m_channel)
        return Error::message("mint", std::string("its worker is not ready (") + state_name(m_state)
                + "); see posta-server status and the daemon's log");
    auto id = m_mints.add(std::move(done), uv_now(m_loop) + mint_timeout_ms);
    if (!id)
        return id.error();
    if (auto sent = send_mint(m_channel.get(), id.value(), kind); !sent) {
        m_mints.cancel(id.value());
        return Error::message("mint", "its worker does not take requests (is it hung?): " + sent.error().text());
    }
    arm_mint_timer();
    return {};
}

void WorkerProcess::on_minted(ChannelMessage& message)
{
    Result<std::string> outcome = message.outcome == MintOutcome::Minted
        ? Result<std::string>(std::move(message.prefix))
        : Result<std::string>(Error::message("mint", "its worker could not mint it: " + message.prefix));
    if (!m_mints.answer(message.count, std::move(outcome)))
        log::warn("%s: worker %d answered mint request %u, which no longer waits (timed out)",
            m_identity.slug.c_str(), m_pid, message.count);
    // Whatever was not moved out: a secret nobody is waiting for.
    ::explicit_bzero(message.prefix.data(), message.prefix.size());
    arm_mint_timer();
}

void WorkerProcess::arm_mint_timer()
{
    auto next = m_mints.next_deadline();
    if (!next) {
        uv_timer_stop(m_mint_timer.get());
        return;
    }
    start_timer_at(m_mint_timer.get(), *next, [](uv_timer_t* timer) noexcept {
        auto* self = static_cast<WorkerProcess*>(timer->data);
        if (!self)
            return;
        self->m_mints.expire(uv_now(self->m_loop));
        self->arm_mint_timer();
    });
}

// A report that does not parse is this worker's fault, not the daemon's:
// it is logged (once per process) and ignored, and the last good one stays.
void WorkerProcess::on_metrics(std::string_view serialized)
{
    auto report = WorkerReport::deserialize(serialized);
    if (!report) {
        if (!std::exchange(m_bad_report_logged, true))
            log::warn("%s: worker %d sent a malformed metrics report (%s); ignoring its reports", m_identity.slug.c_str(),
                m_pid, report.error().text().c_str());
        return;
    }
    m_report = std::move(report.value());
    m_report.add_counters(m_earlier);
    m_report_wall_ms = static_cast<uint64_t>(wall_clock_ms());
}

void WorkerProcess::drop_channel()
{
    // The worker is gone or being killed: nothing it was asked will come.
    m_mints.fail_all(Error::message("mint", "its worker ended before it answered"));
    arm_mint_timer();
    refuse_waiting();
    m_channel_poll.close();
    m_channel.reset();
    if (m_state == State::Ready || m_state == State::Starting)
        m_state = State::Starting; // not routable until it is reaped and restarted
}

void WorkerProcess::pass(UniqueFd fd, SocketAddress const& peer, std::string_view prefix, ConnectionKind kind)
{
    // A worker in its first start (daemon start, identity added by a
    // reload) is about to serve: its connections wait for it, up to
    // head_timeout, instead of getting a 503 (under socket activation the
    // connection that started the daemon is one of them).
    bool first_start = m_state == State::Starting && m_restarts == 0 && m_channel;
    if (!first_start && (m_state != State::Ready || !m_channel)) {
        reply_and_close(std::move(fd), unavailable_reply(kind));
        return;
    }
    if (!first_start && m_waiting.empty() && m_in_flight < m_config.max_pending) {
        auto sent = send(fd.get(), peer, prefix, kind);
        if (sent)
            return; // the worker has its own copy; ours closes here
        if (!sent.error().is(ErrorDomain::Errno, EAGAIN)) {
            log::warn("%s: passing a connection to worker %d: %s", m_identity.slug.c_str(), m_pid,
                sent.error().text().c_str());
            reply_and_close(std::move(fd), unavailable_reply(kind));
            return;
        }
        watch_channel(true); // the channel is full: flush when it drains
    }
    if (m_waiting.size() >= m_config.max_pending * max_waiting_factor) {
        reply_and_close(std::move(fd), unavailable_reply(kind));
        return;
    }
    uint64_t wait_ms = first_start ? static_cast<uint64_t>(m_config.head_timeout.count()) : max_wait_ms;
    m_waiting.push_back(Waiting { std::move(fd), peer, std::string(prefix), uv_now(m_loop) + wait_ms, kind });
    if (m_waiting.size() == 1)
        expire_waiting(); // arms the timer
}

Result<void> WorkerProcess::send(int fd, SocketAddress const& peer, std::string_view prefix, ConnectionKind kind)
{
    auto sent = send_connection(m_channel.get(), fd, peer.get(), peer.length, prefix, kind);
    if (sent)
        ++m_in_flight;
    return sent;
}

void WorkerProcess::flush_waiting()
{
    while (!m_waiting.empty() && m_in_flight < m_config.max_pending) {
        Waiting& next = m_waiting.front();
        auto sent = send(next.fd.get(), next.peer, next.prefix, next.kind);
        if (!sent && sent.error().is(ErrorDomain::Errno, EAGAIN)) {
            watch_channel(true);
            return;
        }
        if (!sent)
            reply_and_close(std::move(next.fd), unavailable_reply(next.kind));
        m_waiting.pop_front();
    }
    if (m_channel_poll)
        watch_channel(false);
    expire_waiting();
}

void WorkerProcess::expire_waiting()
{
    uint64_t now = uv_now(m_loop);
    while (!m_waiting.empty() && m_waiting.front().deadline_ms <= now) {
        reply_and_close(std::move(m_waiting.front().fd), unavailable_reply(m_waiting.front().kind));
        m_waiting.pop_front();
    }
    if (m_waiting.empty()) {
        uv_timer_stop(m_waiting_timer.get());
        return;
    }
    start_timer_at(m_waiting_timer.get(), m_waiting.front().deadline_ms, [](uv_timer_t* timer) noexcept {
        if (auto* self = static_cast<WorkerProcess*>(timer->data))
            self->expire_waiting();
    });
}

void WorkerProcess::refuse_waiting()
{
    for (auto& waiting : m_waiting)
        reply_and_close(std::move(waiting.fd), unavailable_reply(waiting.kind));
    m_waiting.clear();
    uv_timer_stop(m_waiting_timer.get());
}

uint64_t WorkerProcess::uptime_ms() const { return m_pid > 0 ? uv_now(m_loop) - m_started_at_ms : 0; }

char const* WorkerProcess::state_name(State state)
{
    switch (state) {
    case State::Waiting:
        return "waiting";
    case State::Starting:
        return "starting";
    case State::Ready:
        return "ready";
    case State::Backoff:
        return "backoff";
    case State::Stopping:
        return "stopping";
    case State::Exited:
        break;
    }
    return "exited";
}

void WorkerProcess::on_reaped(int wait_status)
{
    bool was_ready = m_ready_at_ms != 0;
    uint64_t uptime = was_ready ? uv_now(m_loop) - m_ready_at_ms : 0;
    bool clean = WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
    std::string how = describe_exit(wait_status);
    pid_t pid = std::exchange(m_pid, -1);
    m_ready_at_ms = 0;
    m_bad_report_logged = false;
    // Its connections and streams are gone; its counters carry on.
    m_report.open_connections = 0;
    m_report.event_subscribers = 0;
    m_earlier = m_report;
    m_in_flight = 0;
    drop_channel();
    uv_timer_stop(m_timer.get());

    if (m_state == State::Stopping || m_state == State::Exited) {
        if (clean)
            log::info("%s: worker %d %s", m_identity.slug.c_str(), pid, how.c_str());
        else
            log::warn("%s: worker %d %s while stopping", m_identity.slug.c_str(), pid, how.c_str());
        m_state = State::Exited;
        return;
    }

    ++m_restarts;
    // It served before: a crash now is likely one bad request, so it comes
    // back at once (restart_backoff.h).
    auto delay = m_backoff.after_exit(was_ready, uptime);
    if (was_ready) {
        log::warn("%s: worker %d %s; restarting", m_identity.slug.c_str(), pid, how.c_str());
        spawn();
        return;
    }
    log::warn("%s: worker %d %s before it was ready; restarting in %lld ms", m_identity.slug.c_str(), pid,
        how.c_str(), static_cast<long long>(delay.count()));
    schedule_restart(delay);
}

void WorkerProcess::schedule_restart(std::chrono::milliseconds delay)
{
    m_state = State::Backoff;
    m_observer(*this);
    uv_timer_start(m_timer.get(), [](uv_timer_t* timer) noexcept {
        if (auto* self = static_cast<WorkerProcess*>(timer->data))
            self->spawn();
    }, static_cast<uint64_t>(delay.count()), 0);
}

void WorkerProcess::update_policy(Policy policy)
{
    std::string bytes = policy.serialize();
    bool const unchanged = bytes == m_policy_bytes;
    m_policy = std::move(policy);
    m_policy_bytes = std::move(bytes);
    if (!m_channel)
        return; // the next start gets it in its start message
    // A Policy message is the only way a reload reaches a running worker. If
    // nothing in it changed, only an https identity's worker has a use for it
    // (it loads its certificate again); the others are not woken, so that a
    // reload of 1,000 identities does not wake 1,000 processes while it
    // starts the one that was added.
    if (unchanged && !m_identity.url.starts_with("https://"))
        return;
    // A worker whose channel is full is hung; it gets the policy when it is
    // restarted, and is logged so the operator knows.
    if (auto sent = send_policy(m_channel.get(), m_policy_bytes); !sent)
        log::warn("%s: worker %d did not take the new policy: %s", m_identity.slug.c_str(), m_pid,
            sent.error().text().c_str());
}

void WorkerProcess::stop()
{
    if (m_state == State::Stopping || m_state == State::Exited)
        return;
    uv_timer_stop(m_timer.get());
    if (m_pid <= 0 && !m_forking) {
        m_state = State::Exited;
        return;
    }
    m_state = State::Stopping;
    if (m_pid > 0)
        signal_child(m_pid, SIGTERM); // else when its pid is answered
    uv_timer_start(m_timer.get(), [](uv_timer_t* timer) noexcept {
        auto* self = static_cast<WorkerProcess*>(timer->data);
        if (!self || self->m_pid <= 0)
            return;
        log::warn("%s: worker %d did not stop within %lld ms; killing it", self->m_identity.slug.c_str(),
            self->m_pid, static_cast<long long>(self->m_config.shutdown_timeout.count()));
        signal_child(self->m_pid, SIGKILL);
    }, static_cast<uint64_t>(m_config.shutdown_timeout.count()), 0);
}

}
