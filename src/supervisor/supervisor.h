// Supervisor: the parent process of `posta-server serve`. It owns the
// listening sockets and the manifest, forks one WorkerProcess per identity,
// accepts every connection, reads the request head just far enough to learn
// its Host (on a TLS listener: the ClientHello, for its SNI), and passes the
// socket to that identity's worker. It answers 400/404/408/431/503 (on TLS,
// an alert) itself; it never opens an identity's files, never loads a
// certificate or key and never speaks TLS.
#pragma once

#include "config/acl.h"
#include "common/address.h"
#include "config/config.h"
#include "common/lifetime.h"
#include "config/manifest.h"
#include "ipc/policy.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"
#include "supervisor/client_hello.h"
#include "supervisor/control_server.h"
#include "supervisor/head_peek.h"
#include "supervisor/listener.h"
#include "supervisor/metrics_server.h"
#include "supervisor/proxy_header.h"
#include "supervisor/reply.h"
#include "supervisor/systemd.h"
#include "supervisor/template_process.h"
#include "supervisor/worker_process.h"

#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace posta {

struct ServeOptions {
    std::vector<std::string> listen;
    std::string manifest_path;
    std::string config_path;
    std::string acl_path;
    unsigned rate_per_minute = 120;
    // Listening sockets passed by systemd; when present, `listen` is unused.
    // One named tls_socket_name (listener.h) is a TLS listener.
    std::vector<systemd::ActivatedSocket> activated;
};

class Supervisor {
public:
    // Reads manifest, config and ACL, binds every listener. Errors are fatal
    // at start; the caller prints them and exits 1.
    static Result<std::unique_ptr<Supervisor>> create(ServeOptions);
    ~Supervisor();

    // Starts the workers and serves until SIGTERM/SIGINT. Returns the exit code.
    int run();

private:
    // What accepts and peeks, built from one config and replaced whole by a
    // reload: the bounds, the fronts trusted to send PROXY headers, the fast
    // path's peek buffer and parser. Nothing else reads these config values,
    // so no buffer outlives its bound.
    struct Intake {
        size_t max_head_bytes;
        uint64_t head_timeout_ms;
        std::vector<AddressRange> trusted_proxies;
        // One peek buffer for every new connection: the fast path reads no
        // head into a buffer of its own.
        std::vector<char> peek_buffer;
        HeadPeek fast_head;

        explicit Intake(Config const& config)
            : max_head_bytes(config.max_head_bytes)
            , head_timeout_ms(static_cast<uint64_t>(config.head_timeout.count()))
            , trusted_proxies(config.trusted_proxies)
            , peek_buffer(config.max_head_bytes)
            , fast_head(config.max_head_bytes)
        {
        }
    };

    // A connection whose PROXY header, head or ClientHello did not arrive in
    // one piece: the bytes read so far are kept here (a head's and a
    // ClientHello's go to the worker with the fd). It keeps the bounds of
    // the intake that accepted it, whatever a reload does later, and one
    // deadline for header and head together.
    struct Pending {
        enum class Awaiting { ProxyHeader, Head };
        Awaiting awaiting = Awaiting::Head;
        UniqueFd fd;
        SocketAddress peer; // the client's: the front's word once its PROXY header came
        ConnectionKind kind = ConnectionKind::Plain;
        // ProxyHeader: the header's bytes so far (fewer than
        // max_proxy_header_bytes); Head: the head's or ClientHello's, never
        // longer than head.max_head_bytes()
        std::string buffer;
        HeadPeek head; // Plain only; on TLS the buffer is reread whole
        uint64_t deadline_ms = 0;
        UvHandle<uv_poll_t> poll; // declared after fd: closed before it
        Supervisor* owner = nullptr;
        std::list<std::unique_ptr<Pending>>::iterator position;
        Lifetime lifetime; // it is erased inside its own poll callback

        explicit Pending(size_t max_head_bytes)
            : head(max_head_bytes)
        {
        }
    };

    Supervisor(ServeOptions, Manifest, Config, Policy);

    Result<void> bind_listeners();
    Result<void> open_signals();

    // The intake (supervisor_intake.cpp): accept, peek, PROXY header,
    // pending heads, routing.
    void on_listener_readable(int listen_fd);
    void on_accept(UniqueFd fd, SocketAddress const& peer, ConnectionKind);
    void take_head(UniqueFd fd, SocketAddress const& peer, ConnectionKind, std::string_view peeked,
        uint64_t deadline_ms);
    void wait_for(UniqueFd fd, SocketAddress const& peer, ConnectionKind, Pending::Awaiting, std::string_view peeked,
        uint64_t deadline_ms);
    void on_pending_readable(Pending&);
    void on_pending_proxy_header(Pending&);
    void on_pending_bytes(Pending&, size_t have);
    void on_head_timer();
    void arm_head_timer();
    void drop_pending(Pending&);
    void settle_head(UniqueFd fd, SocketAddress const& peer, HeadPeek const& head, HeadPeek::State,
        std::string_view prefix);
    void route(UniqueFd fd, SocketAddress const& peer, HeadPeek const& head, std::string_view prefix);
    void settle_client_hello(UniqueFd fd, SocketAddress const& peer, ClientHelloPeek const&, std::string_view prefix);
    WorkerProcess* find_route(std::string const& host_key) const;
    void pause_accepting(uint64_t ms);
    void resume_accepting();

    // The life of the workers (supervisor.cpp).
    void on_signals();
    void reap_children();
    void reload();
    void apply_manifest(Manifest const&);
    void begin_shutdown();
    void sweep_exited();

    void tell_systemd_when_ready();
    // "serving 1 of 2 identities; failing: marcus", for systemd's STATUS=.
    std::string serving_status() const;
    std::string status_json() const;
    // Answers one control socket request (supervisor_control.cpp).
    void answer_control(std::string_view request, ControlPeer const& peer, ControlServer::Reply reply);
    // GET /metrics on metrics_listen (supervisor_metrics.cpp).
    std::string metrics_text() const;
    std::unique_ptr<WorkerProcess> make_worker(IdentityEntry const&);
    WorkerProcess* find_worker(pid_t) const;
    bool files_held(std::string const& slug) const;
    void start_or_wait(WorkerProcess&);

    ServeOptions m_options;
    Manifest m_manifest;
    // The config in force: reloadable keys as last read, every other key
    // as at start (reload_plan.h).
    Config m_config;
    Policy m_policy; // the ACL, rate limit and reloadable config keys every worker applies

    uv_loop_t m_loop {};
    bool m_loop_open = false;

    std::vector<Listener> m_listeners;
    std::vector<UvHandle<uv_poll_t>> m_listener_polls;
    UvHandle<uv_timer_t> m_accept_pause_timer;

    UniqueFd m_signal_fd;
    UvHandle<uv_poll_t> m_signal_poll;

    // Forks every worker (made with the loop; declared before the workers,
    // which refer to it).
    std::unique_ptr<TemplateProcess> m_template;
    // The worker of every identity in the manifest, by slug, and the routing
    // table by host key. Both change only together, inside apply_manifest(),
    // which runs to completion between two connections: routing is atomic.
    std::unordered_map<std::string, std::unique_ptr<WorkerProcess>> m_workers;
    std::unordered_map<std::string, WorkerProcess*> m_routes;
    // The same for TLS listeners: only identities whose URL is https, by
    // the host key of their URL, matched against the ClientHello's SNI.
    std::unordered_map<std::string, WorkerProcess*> m_tls_routes;
    // Workers removed by a reload or stopped at shutdown, until reaped.
    std::vector<std::unique_ptr<WorkerProcess>> m_draining;

    // Slow heads in arrival order; all share head_timeout, so the list is
    // also in deadline order and one timer serves them all.
    std::list<std::unique_ptr<Pending>> m_pending;
    UvHandle<uv_timer_t> m_head_timer;
    std::unique_ptr<Intake> m_intake;

    std::unique_ptr<ControlServer> m_control;
    std::unique_ptr<MetricsServer> m_metrics; // none unless metrics_listen is set

    bool m_stopping = false;
    // systemd hears READY=1 once every worker of the starting manifest is
    // ready or has failed its first start.
    bool m_told_ready = false;
    uint64_t m_started_at_ms = 0;
    unsigned m_reloads = 0;
    unsigned m_reload_failures = 0; // reloads rejected for an error in a file
    uint64_t m_connections_accepted = 0; // on the public listeners
    std::string m_last_reload_error;
    std::vector<std::string> m_needs_restart; // config keys changed in the file since start
};

}
