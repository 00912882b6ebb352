// The supervisor's answers on its control socket (control_request.h):
// its state, and owner secrets, which it never makes itself: it asks the
// identity's worker, the one process that may write its database, and
// relays the answer to the client. Split from supervisor.cpp, which accepts
// and routes connections.
#include "supervisor.h"

#include "common/log.h"
#include "supervisor/control_request.h"

#include <nlohmann/json.hpp>
#include <string.h>
#include <unistd.h>

namespace posta {

void Supervisor::answer_control(std::string_view line, ControlPeer const& peer, ControlServer::Reply reply)
{
    auto request = parse_control_request(line);
    if (!request) {
        reply(error_answer(request.error().detail));
        return;
    }
    if (request->kind == ControlRequest::Kind::Status) {
        reply(status_json());
        return;
    }
    std::string const& slug = request->slug;
    char const* what = mint_kind_name(request->mint);
    if (!may_mint(peer.uid, ::geteuid())) {
        log::warn("control socket: uid %u (pid %d) asked for %s's %s; refused: only root and the daemon's user "
                  "(uid %u) may",
            static_cast<unsigned>(peer.uid), static_cast<int>(peer.pid), slug.c_str(), what,
            static_cast<unsigned>(::geteuid()));
        reply(error_answer("refused: only root and the daemon's user (uid " + std::to_string(::geteuid())
            + ") may ask for an identity's " + what + "; you are uid " + std::to_string(peer.uid)));
        return;
    }
    auto it = m_workers.find(slug);
    if (it == m_workers.end()) {
        std::string known;
        for (auto const& entry : m_manifest.identities)
            known += (known.empty() ? "" : ", ") + entry.slug;
        reply(error_answer("the daemon serves no identity \"" + slug + "\" (" + m_options.manifest_path
            + " as last loaded); known slugs: " + (known.empty() ? "(none)" : known)));
        return;
    }
    log::info("%s: uid %u (pid %d) asks for a new %s", slug.c_str(), static_cast<unsigned>(peer.uid),
        static_cast<int>(peer.pid), what);
    // The answer comes later, from the worker; if the client left meanwhile,
    // the reply drops it. The secret is never logged.
    auto done = [reply, slug, what, peer](Result<std::string> minted) mutable {
        if (!minted) {
            log::warn("%s: no %s for uid %u (pid %d): %s", slug.c_str(), what, static_cast<unsigned>(peer.uid),
                static_cast<int>(peer.pid), minted.error().detail.c_str());
            reply(error_answer(slug + ": " + minted.error().detail));
            return;
        }
        log::info("%s: %s minted by its worker for uid %u (pid %d)", slug.c_str(), what,
            static_cast<unsigned>(peer.uid), static_cast<int>(peer.pid));
        std::string answer = secret_answer(minted.value());
        ::explicit_bzero(minted.value().data(), minted.value().size());
        reply(std::move(answer));
    };
    if (auto asked = it->second->mint(request->mint, std::move(done)); !asked)
        reply(error_answer(slug + ": " + asked.error().detail));
}

std::string Supervisor::status_json() const
{
    using nlohmann::json;
    uint64_t now = uv_now(&m_loop);
    json identities = json::array();
    // In manifest order, which is the operator's order.
    for (auto const& entry : m_manifest.identities) {
        auto it = m_workers.find(entry.slug);
        if (it == m_workers.end())
            continue;
        WorkerProcess const& worker = *it->second;
        identities.push_back({
            { "slug", entry.slug },
            { "url", entry.url },
            { "host", entry.host_key },
            { "state", WorkerProcess::state_name(worker.state()) },
            { "pid", worker.pid() > 0 ? json(worker.pid()) : json(nullptr) },
            { "uptime_s", worker.uptime_ms() / 1000 },
            { "restarts", worker.restarts() },
            { "pending", worker.pending() },
        });
        // An https identity's certificate problem, as its worker reported
        // it; null when it has a certificate in use (or is not https).
        identities.back()["tls_problem"]
            = worker.tls_problem().empty() ? json(nullptr) : json(worker.tls_problem());
    }
    json out = {
        { "pid", ::getpid() },
        { "uptime_s", (now - m_started_at_ms) / 1000 },
        { "manifest", m_options.manifest_path },
        { "reloads", m_reloads },
        { "last_reload_error", m_last_reload_error.empty() ? json(nullptr) : json(m_last_reload_error) },
        { "draining", m_draining.size() },
        { "needs_restart", m_needs_restart },
        { "identities", std::move(identities) },
    };
    // Paths and names come from files and may be any bytes: the dump shows
    // bytes that are not UTF-8 as U+FFFD instead of throwing.
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}
