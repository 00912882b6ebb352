// Supervisor::metrics_text: the body of GET /metrics (metrics_server.h), in
// the Prometheus text format (exposition.h). Per identity, from its
// WorkerProcess and its worker's last report (ipc/worker_report.h);
// daemon-wide, from the supervisor's own counters. posta-server(8),
// "Metrics", lists every family; a new one goes there too.
//
// It runs on the supervisor's loop, so it must stay cheap: one pass over the
// workers per family, no allocation per sample beyond the text's growth.
#include "supervisor.h"

#include "common/duration.h"
#include "supervisor/exposition.h"


namespace posta {

namespace {

char const* const k_classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };

std::string_view reply_label(Reply reply)
{
    switch (reply) {
    case Reply::BadRequest:
        return "400";
    case Reply::NotFound:
        return "404";
    case Reply::RequestTimeout:
        return "408";
    case Reply::HeadTooLarge:
        return "431";
    case Reply::Unavailable:
        return "503";
    case Reply::TlsUnrecognizedName:
        return "unrecognized_name";
    case Reply::TlsInternalError:
        break;
    }
    return "internal_error";
}

bool is_tls_alert(Reply reply) { return reply == Reply::TlsUnrecognizedName || reply == Reply::TlsInternalError; }

}

std::string Supervisor::metrics_text() const
{
    using Type = Exposition::Type;
    uint64_t const now_ms = static_cast<uint64_t>(wall_clock_ms());

    // In manifest order, the operator's, as in `status`.
    std::vector<std::pair<std::string_view, WorkerProcess const*>> workers;
    workers.reserve(m_manifest.identities.size());
    for (auto const& entry : m_manifest.identities)
        if (auto it = m_workers.find(entry.slug); it != m_workers.end())
            workers.emplace_back(entry.slug, it->second.get());

    Exposition out;
    auto per_worker = [&](std::string_view name, Type type, std::string_view help, auto value) {
        out.family(name, type, help);
        for (auto const& [slug, worker] : workers)
            out.sample({ { "identity", slug } }, value(*worker));
    };

    per_worker("posta_worker_up", Type::Gauge, "1 while the identity's worker is ready and serving, else 0.",
        [](WorkerProcess const& w) { return uint64_t { w.state() == WorkerProcess::State::Ready }; });
    per_worker("posta_worker_restarts_total", Type::Counter,
        "Times the identity's worker was restarted after it exited unasked.",
        [](WorkerProcess const& w) { return uint64_t { w.restarts() }; });
    per_worker("posta_worker_report_timestamp_seconds", Type::Gauge,
        "When the worker last reported its metrics (Unix time; 0: never). The identity's other metrics are as "
        "of then; a worker reports at least every 15 s, so an older one is hung or not running.",
        [](WorkerProcess const& w) { return static_cast<double>(w.report_wall_ms()) / 1000.0; });
    per_worker("posta_worker_pending_connections", Type::Gauge,
        "Connections routed to the worker that it has not taken yet.",
        [](WorkerProcess const& w) { return uint64_t { w.pending() }; });

    out.family("posta_http_responses_total", Type::Counter, "Responses the identity's worker sent, by status class.");
    for (auto const& [slug, worker] : workers)
        for (size_t i = 0; i < std::size(k_classes); ++i)
            out.sample({ { "identity", slug }, { "code", k_classes[i] } }, worker->report().responses[i]);

    out.family("posta_inbox_deliveries_total", Type::Counter,
        "Deliveries to the identity's inbox that were stored (accepted) or were stored already (duplicate).");
    for (auto const& [slug, worker] : workers) {
        out.sample({ { "identity", slug }, { "outcome", "accepted" } }, worker->report().deliveries_accepted);
        out.sample({ { "identity", slug }, { "outcome", "duplicate" } }, worker->report().deliveries_duplicate);
    }
    out.family("posta_inbox_refusals_total", Type::Counter,
        "Deliveries to the identity's inbox that were refused, by the error code of the answer.");
    for (auto const& [slug, worker] : workers)
        for (auto const& [code, count] : worker->report().deliveries_refused.entries)
            out.sample({ { "identity", slug }, { "reason", code } }, count);

    out.family("posta_outbox_deliveries", Type::Gauge,
        "The identity's outgoing deliveries by state: waiting to be sent, delivered, or given up on.");
    for (auto const& [slug, worker] : workers) {
        WorkerReport const& r = worker->report();
        out.sample({ { "identity", slug }, { "state", "queued" } }, r.outbox_queued);
        out.sample({ { "identity", slug }, { "state", "delivered" } }, r.outbox_delivered);
        out.sample({ { "identity", slug }, { "state", "failed" } }, r.outbox_failed);
    }
    per_worker("posta_outbox_oldest_queued_age_seconds", Type::Gauge,
        "How long the identity's oldest queued delivery has been waiting (0: none queued).",
        [now_ms](WorkerProcess const& w) {
            uint64_t queued_at = w.report().outbox_oldest_queued_ms;
            return queued_at == 0 || queued_at > now_ms ? 0.0 : static_cast<double>(now_ms - queued_at) / 1000.0;
        });
    per_worker("posta_event_subscribers", Type::Gauge, "Open event streams (GET /api/events) of the identity.",
        [](WorkerProcess const& w) { return w.report().event_subscribers; });
    per_worker("posta_open_connections", Type::Gauge, "Client connections the identity's worker has open.",
        [](WorkerProcess const& w) { return w.report().open_connections; });

    out.family("posta_identities", Type::Gauge, "Identities in the manifest in force.");
    out.sample({}, uint64_t { m_workers.size() });
    out.family("posta_connections_accepted_total", Type::Counter, "Connections accepted on the public listeners.");
    out.sample({}, m_connections_accepted);
    out.family("posta_supervisor_responses_total", Type::Counter,
        "Answers the supervisor gave itself before any worker, by HTTP status.");
    for (Reply reply : all_replies)
        if (!is_tls_alert(reply))
            out.sample({ { "code", reply_label(reply) } }, reply_count(reply));
    out.family("posta_supervisor_tls_alerts_total", Type::Counter,
        "TLS alerts the supervisor sent itself in place of a handshake, by alert.");
    for (Reply reply : all_replies)
        if (is_tls_alert(reply))
            out.sample({ { "alert", reply_label(reply) } }, reply_count(reply));
    out.family("posta_supervisor_passes_waiting", Type::Gauge,
        "Connections routed to a worker and not taken by it yet, over every identity (slow heads not included).");
    uint64_t waiting = 0;
    for (auto const& [slug, worker] : m_workers)
        waiting += worker->pending();
    out.sample({}, waiting);
    out.family("posta_supervisor_slow_heads", Type::Gauge,
        "Connections whose request head or ClientHello the supervisor is still waiting for.");
    out.sample({}, uint64_t { m_pending.size() });
    out.family("posta_reloads_total", Type::Counter, "Reloads (SIGHUP), the rejected ones included.");
    out.sample({}, uint64_t { m_reloads });
    out.family("posta_reload_failures_total", Type::Counter,
        "Reloads rejected for an error in the manifest, config or ACL file.");
    out.sample({}, uint64_t { m_reload_failures });
    out.family("posta_draining_workers", Type::Gauge, "Workers of removed or changed identities, not exited yet.");
    out.sample({}, uint64_t { m_draining.size() });
    return out.take();
}

}
