// The worker's services wired together for serving (worker.h): the routes
// of the identity document, the web app, the owner API, the event stream
// and the inbox; the outbound HTTP client under the outbound policy; the
// outbox; the session context; the channel watched; then `ready`. Also the
// metrics report that reads them. Split from worker.cpp, the worker's life.
#include "worker.h"

#include "ipc/channel.h"
#include "common/host_key.h"
#include "common/log.h"
#include "common/log_throttle.h"
#include "config/outbound_policy.h"
#include "ipc/worker_report.h"
#include "http/http_client.h"
#include "posta_version.h"
#include "worker/api_server.h"
#include "worker/https_redirect.h"
#include "worker/identity_document.h"
#include "worker/inbox.h"
#include "worker/metrics_reporter.h"
#include "worker/outbox_loop.h"
#include "worker/peer_directory.h"
#include "worker/sandbox_probe.h"
#include "worker/web_app.h"

#include <chrono>

namespace posta {

namespace {

// Event log pruning: not in the start's critical path, then hourly (the log
// keeps a week or 10,000 events, so an hour's growth is small).
constexpr uint64_t prune_first_ms = 60'000;
constexpr uint64_t prune_every_ms = 3'600'000;
// A stranger can make the worker drop or refuse connections as fast as it
// connects; each kind is logged at most once per this.
constexpr Duration repeated_warning_interval = std::chrono::seconds(10);

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
    m_context.max_body_bytes = m_setup.config.max_body_bytes;
    apply_policy();
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

}
