// The supervisor's life (supervisor.h): start, the workers of the manifest,
// signals, reload and shutdown. How a connection reaches its worker is in
// supervisor_intake.cpp; the control socket's answers in
// supervisor_control.cpp; GET /metrics in supervisor_metrics.cpp.
#include "supervisor.h"

#include "common/callback_guard.h"
#include "common/host_key.h"
#include "common/log.h"
#include "supervisor/reload_plan.h"
#include "supervisor/systemd.h"

#include <algorithm>
#include <csignal>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace posta {

namespace {

void raise_fd_limit()
{
    rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
}

template<typename T>
std::string join_errors(Parsed<T> const& parsed)
{
    std::string out;
    for (auto const& d : parsed.errors) {
        if (!out.empty())
            out += "\n";
        out += d.text();
    }
    return out;
}

}

Supervisor::Supervisor(ServeOptions options, Manifest manifest, Config config, Policy policy)
    : m_options(std::move(options))
    , m_manifest(std::move(manifest))
    , m_config(std::move(config))
    , m_policy(std::move(policy))
    , m_intake(std::make_unique<Intake>(m_config))
{
}

Result<std::unique_ptr<Supervisor>> Supervisor::create(ServeOptions options)
{
    auto config = load_config(options.config_path);
    if (!config.ok())
        return Error::message("config", join_errors(config));
    auto manifest = load_manifest(options.manifest_path);
    if (!manifest.ok())
        return Error::message("manifest", join_errors(manifest));
    auto acl = load_acl(options.acl_path);
    if (!acl.ok())
        return Error::message("acl", join_errors(acl));

    log::configure(config.value.log_level, config.value.log_format);
    Policy policy;
    policy.acl = std::move(acl.value);
    policy.rate_per_minute = options.rate_per_minute;
    policy.take_config(config.value);
    std::unique_ptr<Supervisor> self(
        new Supervisor(std::move(options), std::move(manifest.value), std::move(config.value), std::move(policy)));
    if (int rc = uv_loop_init(&self->m_loop); rc < 0)
        return uv_error(rc, "uv_loop_init");
    self->m_loop_open = true;
    // Forks every worker: an image of the very binary the supervisor runs,
    // even after an upgrade replaced the file on disk (the kernel keeps the
    // running one), so supervisor and workers always speak one channel
    // protocol; an upgrade takes effect when the daemon restarts.
    self->m_template = std::make_unique<TemplateProcess>(&self->m_loop, "/proc/self/exe");

    raise_fd_limit();
    // Workers are forked by the template and handed to us when their middle
    // process exits (template_process.h): we reap them like our children.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        return Error::from_errno("prctl", "PR_SET_CHILD_SUBREAPER");
    if (auto ok = self->open_signals(); !ok)
        return ok.error();
    if (auto ok = self->bind_listeners(); !ok)
        return ok.error();
    Supervisor* raw = self.get();
    auto control = ControlServer::create(&self->m_loop, self->m_config.control_socket,
        [raw](std::string_view request, ControlPeer const& peer, ControlServer::Reply reply) {
            raw->answer_control(request, peer, std::move(reply));
        });
    if (!control)
        return control.error();
    self->m_control = std::move(control.value());
    if (!self->m_config.metrics_listen.empty()) {
        auto address = parse_socket_address(self->m_config.metrics_listen); // checked with the config
        if (!address)
            return address.error();
        auto metrics = MetricsServer::create(&self->m_loop, address.value(), [raw] { return raw->metrics_text(); });
        if (!metrics)
            return metrics.error();
        self->m_metrics = std::move(metrics.value());
    }
    return self;
}

Supervisor::~Supervisor()
{
    // Handles close here; run the loop once more so their memory is freed.
    m_pending.clear();
    m_metrics.reset();
    m_listener_polls.clear();
    m_accept_pause_timer.close();
    m_signal_poll.close();
    m_head_timer.close();
    m_workers.clear();
    m_draining.clear();
    m_template.reset();
    if (m_loop_open) {
        uv_run(&m_loop, UV_RUN_DEFAULT);
        uv_loop_close(&m_loop);
    }
}

Result<void> Supervisor::open_signals()
{
    // Signals arrive through a signalfd read by the loop, not through
    // handlers: nothing runs in signal context, and the worker template and
    // its workers inherit only the mask (a worker unblocks what its loop
    // handles).
    sigset_t set;
    sigemptyset(&set);
    for (int sig : { SIGHUP, SIGTERM, SIGINT, SIGCHLD })
        sigaddset(&set, sig);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) < 0)
        return Error::from_errno("sigprocmask");
    ::signal(SIGPIPE, SIG_IGN);
    m_signal_fd.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!m_signal_fd)
        return Error::from_errno("signalfd");
    auto poll = make_poll(&m_loop, m_signal_fd.get(), this);
    if (!poll)
        return poll.error();
    m_signal_poll = std::move(poll.value());
    uv_poll_start(m_signal_poll.get(), UV_READABLE, [](uv_poll_t* handle, int, int) noexcept {
        if (auto* self = static_cast<Supervisor*>(handle->data))
            guard_callback("signals", [&] { self->on_signals(); });
    });
    return {};
}

Result<void> Supervisor::bind_listeners()
{
    // Socket activation: the sockets systemd passed replace --listen.
    auto activated = std::move(m_options.activated);
    for (auto& socket : activated) {
        auto kind = socket.name == tls_socket_name ? ConnectionKind::Tls : ConnectionKind::Plain;
        auto listener = Listener::adopt(std::move(socket.fd), kind);
        if (!listener)
            return listener.error();
        m_listeners.push_back(std::move(listener.value()));
    }
    auto defer = std::chrono::duration_cast<std::chrono::seconds>(m_config.head_timeout);
    for (auto const& text : activated.empty() ? m_options.listen : std::vector<std::string> {}) {
        auto address = parse_listen_address(text);
        if (!address)
            return address.error();
        auto listener = Listener::bind(address.value(), defer);
        if (!listener)
            return listener.error();
        m_listeners.push_back(std::move(listener.value()));
    }
    for (auto const& listener : m_listeners) {
        auto poll = make_poll(&m_loop, listener.fd(), this);
        if (!poll)
            return poll.error();
        m_listener_polls.push_back(std::move(poll.value()));
    }
    m_accept_pause_timer = make_timer(&m_loop, this);
    m_head_timer = make_timer(&m_loop, this);
    return {};
}

std::unique_ptr<WorkerProcess> Supervisor::make_worker(IdentityEntry const& entry)
{
    return std::make_unique<WorkerProcess>(&m_loop, *m_template, entry, m_config, m_policy,
        [this](WorkerProcess&) { tell_systemd_when_ready(); });
}

void Supervisor::tell_systemd_when_ready()
{
    if (m_told_ready)
        return;
    for (auto const& [slug, worker] : m_workers) {
        auto state = worker->state();
        if (state != WorkerProcess::State::Ready && state != WorkerProcess::State::Backoff)
            return;
    }
    m_told_ready = true;
    systemd::notify("READY=1\nSTATUS=" + serving_status());
}

std::string Supervisor::serving_status() const
{
    size_t serving = 0;
    std::vector<std::string> failing;
    for (auto const& [slug, worker] : m_workers) {
        if (worker->state() == WorkerProcess::State::Ready)
            ++serving;
        else if (worker->state() == WorkerProcess::State::Backoff)
            failing.push_back(slug);
    }
    std::string out = "serving " + std::to_string(serving) + " of " + std::to_string(m_workers.size()) + " identities";
    if (failing.empty())
        return out;
    std::sort(failing.begin(), failing.end());
    constexpr size_t named = 10;
    out += "; failing: ";
    for (size_t i = 0; i < std::min(failing.size(), named); ++i)
        out += (i ? ", " : "") + failing[i];
    if (failing.size() > named)
        out += " and " + std::to_string(failing.size() - named) + " more";
    return out;
}

int Supervisor::run()
{
    m_started_at_ms = uv_now(&m_loop);

    Manifest initial = std::exchange(m_manifest, {});
    apply_manifest(initial);
    tell_systemd_when_ready(); // an empty manifest is ready at once
    resume_accepting();
    for (auto const& listener : m_listeners)
        log::info("listening on %s", listener.name().c_str());
    if (m_metrics)
        log::info("metrics on http://%s/metrics", m_metrics->name().c_str());
    log::info("serving %zu identities from %s", m_workers.size(), m_options.manifest_path.c_str());
    uv_run(&m_loop, UV_RUN_DEFAULT);
    log::info("stopped");
    return 0;
}


void Supervisor::on_signals()
{
    signalfd_siginfo info;
    bool reap = false;
    bool reload_asked = false;
    bool stop_asked = false;
    while (::read(m_signal_fd.get(), &info, sizeof info) == sizeof info) {
        switch (info.ssi_signo) {
        case SIGCHLD:
            reap = true;
            break;
        case SIGHUP:
            reload_asked = true;
            break;
        case SIGTERM:
        case SIGINT:
            stop_asked = true;
            break;
        default:
            break;
        }
    }
    // Several signals may have been coalesced; act once on each kind.
    if (reap)
        reap_children();
    if (stop_asked && !m_stopping) {
        log::info("received %s; stopping", "SIGTERM/SIGINT");
        begin_shutdown();
    } else if (reload_asked && !m_stopping) {
        reload();
    }
    sweep_exited();
}

void Supervisor::reap_children()
{
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        if (m_template->on_reaped(pid))
            continue;
        // A worker can be reaped only after the template answered its
        // fork: an unknown pid may be in an answer not read yet.
        WorkerProcess* found = find_worker(pid);
        if (!found) {
            m_template->collect_answers();
            found = find_worker(pid);
        }
        if (found)
            found->on_reaped(status);
        else
            log::debug("reaped child %d of no identity (a worker whose identity was gone before it was forked)", pid);
    }
}

WorkerProcess* Supervisor::find_worker(pid_t pid) const
{
    for (auto const& [slug, worker] : m_workers)
        if (worker->pid() == pid)
            return worker.get();
    for (auto const& worker : m_draining)
        if (worker->pid() == pid)
            return worker.get();
    return nullptr;
}

void Supervisor::sweep_exited()
{
    std::erase_if(m_draining, [](auto const& worker) { return worker->state() == WorkerProcess::State::Exited; });
    // A changed or re-added identity's new worker waited for the one holding
    // its files; start those whose holder is now gone.
    for (auto& [slug, worker] : m_workers)
        if (worker->state() == WorkerProcess::State::Waiting && !files_held(slug))
            worker->start();
    if (m_stopping && m_draining.empty() && m_workers.empty()) {
        // Every worker is gone: close what keeps the loop alive.
        m_template->close();
        m_signal_poll.close();
        m_accept_pause_timer.close();
        m_head_timer.close();
    }
}

bool Supervisor::files_held(std::string const& slug) const
{
    // Any process of this slug that is not reaped yet may hold its keys and
    // database, whichever reload stopped it.
    return std::any_of(m_draining.begin(), m_draining.end(), [&](auto const& worker) {
        return worker->identity().slug == slug && worker->state() != WorkerProcess::State::Exited;
    });
}

void Supervisor::start_or_wait(WorkerProcess& worker)
{
    // Two workers never run on one identity's files: a new worker starts only
    // once every earlier process of its slug was reaped (see sweep_exited).
    if (!files_held(worker.identity().slug))
        worker.start();
}

void Supervisor::apply_manifest(Manifest const& manifest)
{
    // Removed or changed identities stop; added or changed ones start.
    auto diff = diff_manifests(m_manifest, manifest);
    for (auto const& slug : diff.removed)
        log::info("%s: removed; stopping its worker", slug.c_str());
    for (auto const& slug : diff.changed) {
        auto const& entry = *manifest.find_slug(slug);
        log::info("%s: changed (url %s, name \"%s\"); restarting its worker", slug.c_str(), entry.url.c_str(),
            entry.name.c_str());
    }
    for (auto const& slug : diff.added)
        if (m_reloads > 0)
            log::info("%s: added (%s)", slug.c_str(), manifest.find_slug(slug)->url.c_str());

    std::unordered_map<std::string, std::unique_ptr<WorkerProcess>> next;
    for (auto const& slug : diff.kept) {
        auto it = m_workers.find(slug);
        next.emplace(slug, std::move(it->second));
        m_workers.erase(it);
    }
    // Stop first, so that a new worker of the same slug sees its predecessor
    // holding the files and waits for it.
    for (auto& [slug, worker] : m_workers) {
        worker->stop();
        m_draining.push_back(std::move(worker));
    }
    m_workers.clear();
    for (auto const* list : { &diff.changed, &diff.added }) {
        for (auto const& slug : *list) {
            auto worker = make_worker(*manifest.find_slug(slug));
            start_or_wait(*worker);
            next.emplace(slug, std::move(worker));
        }
    }
    m_workers = std::move(next);

    std::unordered_map<std::string, WorkerProcess*> routes;
    std::unordered_map<std::string, WorkerProcess*> tls_routes;
    for (auto& [slug, worker] : m_workers) {
        routes.emplace(worker->identity().host_key, worker.get());
        if (auto url = parse_identity_url(worker->identity().url); url && url->scheme == "https")
            tls_routes.emplace(worker->identity().host_key, worker.get());
    }
    m_routes = std::move(routes);
    m_tls_routes = std::move(tls_routes);
    m_manifest = manifest;
}

void Supervisor::reload()
{
    ++m_reloads;
    systemd::notify("RELOADING=1");
    log::info("SIGHUP: reloading %s", m_options.manifest_path.c_str());
    auto manifest = load_manifest(m_options.manifest_path);
    auto config = load_config(m_options.config_path);
    auto acl = load_acl(m_options.acl_path);
    if (!manifest.ok() || !config.ok() || !acl.ok()) {
        m_last_reload_error.clear();
        for (auto const* errors : { &manifest.errors, &config.errors, &acl.errors }) {
            for (auto const& d : *errors) {
                log::error("reload: %s", d.text().c_str());
                if (m_last_reload_error.empty())
                    m_last_reload_error = d.text();
            }
        }
        ++m_reload_failures;
        log::error("reload rejected; still serving the previous manifest");
        systemd::notify("READY=1\nSTATUS=reload rejected: " + m_last_reload_error);
        return;
    }
    m_last_reload_error.clear();
    auto plan = plan_config_reload(m_config, config.value);
    for (auto const& key : plan.needs_restart)
        if (std::find(m_needs_restart.begin(), m_needs_restart.end(), key) == m_needs_restart.end())
            log::warn("reload: %s changed in %s; it needs a restart of the daemon, the running value stays",
                key.c_str(), m_options.config_path.c_str());
    m_needs_restart = std::move(plan.needs_restart);
    m_config = std::move(plan.config);
    // Between two callbacks nothing borrows the intake: the fast path uses it
    // within one call, and each pending head carries its own bound.
    m_intake = std::make_unique<Intake>(m_config);
    m_policy.acl = std::move(acl.value);
    m_policy.take_config(m_config);
    log::configure(m_config.log_level, m_config.log_format);
    apply_manifest(manifest.value);
    // Unchanged workers keep running; they follow the new ACL and the
    // reloadable config keys at once.
    for (auto& [slug, worker] : m_workers)
        worker->update_policy(m_policy);
    log::info("reload done: %zu identities", m_workers.size());
    systemd::notify("READY=1\nSTATUS=" + serving_status());
}

void Supervisor::begin_shutdown()
{
    m_stopping = true;
    systemd::notify("STOPPING=1");
    m_control.reset();
    m_metrics.reset();
    for (auto& poll : m_listener_polls)
        poll.close();
    m_listener_polls.clear();
    m_listeners.clear(); // no new connections from here on
    uv_timer_stop(m_accept_pause_timer.get());
    for (auto& pending : m_pending)
        pending->poll.close();
    m_pending.clear();
    m_routes.clear();
    m_tls_routes.clear();
    for (auto& [slug, worker] : m_workers) {
        worker->stop();
        m_draining.push_back(std::move(worker));
    }
    m_workers.clear();
}

}
