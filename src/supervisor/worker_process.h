// WorkerProcess: the supervisor's view of one identity's worker — its pid,
// its end of the private channel, its state, and its restart schedule. It
// has the worker template fork the worker (template_process.h) and sends it
// its start (ipc/worker_start.h), hears `ready` on the channel, passes connections to it,
// and restarts it after a crash (ARCHITECTURE.md, "Supervisor").
#pragma once

#include "common/address.h"
#include "ipc/channel.h"
#include "config/config.h"
#include "common/lifetime.h"
#include "config/manifest.h"
#include "ipc/policy.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"
#include "supervisor/mint_requests.h"
#include "supervisor/restart_backoff.h"
#include "ipc/worker_report.h"
#include "supervisor/template_process.h"

#include <chrono>
#include <deque>
#include <functional>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>

namespace posta {

class WorkerProcess {
public:
    enum class State {
        Waiting,  // created, not started: waits for its predecessor to exit
        Starting, // spawned; keys and database not open yet
        Ready,    // serving: connections are passed to it
        Backoff,  // not running; a restart is scheduled
        Stopping, // told to stop (removed or daemon stopping); not restarted
        Exited,   // stopped for good; waiting to be dropped
    };

    // Told when the worker becomes Ready or goes to Backoff; it must not
    // destroy the worker.
    using StateObserver = std::function<void(WorkerProcess&)>;

    // Nothing runs until start(). The owner drops the object once its state
    // is Exited (checked after stop() and after each on_reaped()), never from
    // inside one of its methods.
    // `forker` forks the process (it outlives every WorkerProcess).
    WorkerProcess(uv_loop_t* loop, TemplateProcess& forker, IdentityEntry identity, Config const& config,
        Policy policy, StateObserver observer);
    ~WorkerProcess();
    WorkerProcess(WorkerProcess const&) = delete;
    WorkerProcess& operator=(WorkerProcess const&) = delete;

    // Spawns the worker. On failure the worker goes to Backoff and retries.
    void start();

    // Takes a routed connection: passes it to the worker now, or lets it
    // wait while the worker has max_pending connections it has not taken
    // yet or is in its first start (up to head_timeout), or answers 503.
    // Never blocks: a hung or stopped worker costs its own clients a 503
    // after at most `max_wait`, and nobody else anything (a TLS connection,
    // `kind`, gets an internal_error alert instead).
    void pass(UniqueFd fd, SocketAddress const& peer, std::string_view prefix, ConnectionKind kind);

    // Called by the supervisor's SIGCHLD handler with waitpid's status.
    void on_reaped(int wait_status);

    // The policy of the running worker and of every later restart. The
    // running worker is sent it if it changed, or always for an https
    // identity (a reload is when its worker loads its certificate again).
    void update_policy(Policy policy);

    // Asks the ready worker for an owner secret of `kind` (MessageType::Mint);
    // `done` is called once, later, with the secret or why there is none
    // (no answer within mint_timeout, or the worker ended first). An error
    // when the worker is not ready or has max_mints_in_flight requests
    // waiting; `done` is then never called.
    Result<void> mint(MintKind kind, MintRequests::Done done);

    // SIGTERM now; SIGKILL once `shutdown_timeout` passes without exit.
    void stop();

    IdentityEntry const& identity() const { return m_identity; }
    State state() const { return m_state; }
    pid_t pid() const { return m_pid; }
    unsigned restarts() const { return m_restarts; }
    // What the worker last said is wrong with its TLS certificate ("" when
    // it has one in use, or never said anything: not an https identity).
    std::string const& tls_problem() const { return m_tls_problem; }
    // Connections passed but not yet taken by the worker, plus those waiting
    // to be passed.
    size_t pending() const { return m_in_flight + m_waiting.size(); }
    // What the worker's processes reported (worker_report.h): counters
    // summed over every process of this identity's worker since this
    // object was made (what a crashed process counted after its last report
    // is lost), gauges as the current process last said (connections and
    // event streams 0 once it exited). Empty until a first report.
    WorkerReport const& report() const { return m_report; }
    // When the last report came (ms since the Unix epoch; 0: none yet). A
    // worker reports at least every heartbeat (MetricsReporter); an older
    // report is that of a hung worker, or of one not running.
    uint64_t report_wall_ms() const { return m_report_wall_ms; }
    // Milliseconds since the current process was spawned (0 when none runs).
    uint64_t uptime_ms() const;
    static char const* state_name(State);

private:
    void spawn();
    void on_forked(Result<pid_t>);
    void on_channel_readable();
    void on_metrics(std::string_view serialized);
    void schedule_restart(std::chrono::milliseconds delay);
    void drop_channel();
    Result<void> send(int fd, SocketAddress const& peer, std::string_view prefix, ConnectionKind kind);
    void flush_waiting();
    void expire_waiting();
    void refuse_waiting();
    void watch_channel(bool writable);
    void on_minted(ChannelMessage&);
    void arm_mint_timer();

    // A connection routed here while the worker was behind.
    struct Waiting {
        UniqueFd fd;
        SocketAddress peer;
        std::string prefix;
        uint64_t deadline_ms; // answered 503 if still here then
        ConnectionKind kind;
    };

    uv_loop_t* m_loop;
    TemplateProcess& m_template;
    IdentityEntry m_identity;
    Config m_config;
    Policy m_policy;
    std::string m_policy_bytes; // m_policy serialised: what this worker last got or gets at its start
    StateObserver m_observer;

    State m_state = State::Waiting;
    pid_t m_pid = -1;
    bool m_forking = false; // asked the template; the pid is not known yet
    UniqueFd m_channel;
    UvHandle<uv_poll_t> m_channel_poll;
    int m_channel_events = 0; // what m_channel_poll watches for; 0 before its first start
    UvHandle<uv_timer_t> m_timer; // restart backoff, or the SIGKILL deadline
    uint64_t m_started_at_ms = 0;
    uint64_t m_ready_at_ms = 0;
    unsigned m_in_flight = 0; // passed, not yet credited back by the worker
    std::deque<Waiting> m_waiting;
    UvHandle<uv_timer_t> m_waiting_timer;
    RestartBackoff m_backoff;
    unsigned m_restarts = 0;
    std::string m_tls_problem;
    MintRequests m_mints;
    UvHandle<uv_timer_t> m_mint_timer;
    WorkerReport m_report;
    WorkerReport m_earlier; // the counters of processes that exited
    uint64_t m_report_wall_ms = 0;
    bool m_bad_report_logged = false; // once per process: a broken worker reports every second
    Lifetime m_lifetime; // the template's answer may come after we are gone
};

}
