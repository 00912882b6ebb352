// OutboxLoop: one scan of the queue per wake-up (a message queued, an
// attempt finished, the timer due). A scan reads the head of every
// recipient's queue from the store (ids and due times only, so a scan costs
// the same whatever the messages weigh), starts those that are due and
// allowed by the bounds (in flight per worker and per destination host, that
// host's circuit, one attempt per recipient at a time), and arms the one
// timer for the earliest head it left waiting. Each outcome is committed, with its
// delivery.updated event, before the next scan, so the store is always the
// whole truth. A message's content is read when its attempt starts and
// dropped once the request has its own copy: the outbox's memory grows with
// the attempts in flight, not with the queue.
#include "outbox_loop.h"

#include "common/duration.h"
#include "common/excerpt.h"
#include "common/host_key.h"
#include "common/log.h"
#include "protocol/envelope.h"
#include "worker/keys.h"
#include "worker/peer_directory.h"
#include "protocol/signature.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <sodium.h>

namespace posta {

AttemptOutcome classify_status(int status)
{
    if (status == 200 || status == 202)
        return AttemptOutcome::Delivered;
    if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599))
        return AttemptOutcome::Retry;
    // A 404 for the inbox of a document we had is a host that serves no such
    // identity right now: the answer of a posta-server the identity is
    // moving away from (posta-server(8), "BACKUP AND RESTORE") until its
    // traffic goes to the new one. Retried like a host that does not answer,
    // as a document that cannot be fetched is: failing it at once would lose
    // the message for good during every move.
    if (status == 404)
        return AttemptOutcome::Retry;
    // Other 2xx and 3xx (redirects are not followed) are not acceptance
    // either; like other 4xx they will not change by asking again.
    return AttemptOutcome::Failed;
}

AttemptOutcome classify_error(HttpClientError error)
{
    switch (error) {
    case HttpClientError::Cancelled:
        return AttemptOutcome::Abandoned;
    case HttpClientError::Invalid:
        // The recipient's inbox URL itself is unusable; asking again sends
        // the same request.
        return AttemptOutcome::Failed;
    case HttpClientError::Connect:
    case HttpClientError::Refused: // the name may lead elsewhere later, or the operator allow it
    case HttpClientError::Timeout:
    case HttpClientError::TooLarge:
    case HttpClientError::Tls:
    case HttpClientError::Protocol:
    case HttpClientError::Internal:
        break;
    }
    return AttemptOutcome::Retry;
}

Duration retry_delay(int64_t attempts, Duration base, Duration max, double jitter)
{
    using Ms = std::chrono::milliseconds;
    int64_t const base_ms = std::max<int64_t>(1, std::chrono::duration_cast<Ms>(base).count());
    int64_t const max_ms = std::max(base_ms, std::chrono::duration_cast<Ms>(max).count());
    int64_t nominal = base_ms;
    for (int64_t i = 1; i < attempts && nominal < max_ms; ++i)
        nominal = nominal > max_ms / 2 ? max_ms : nominal * 2;
    nominal = std::min(nominal, max_ms);
    jitter = std::clamp(jitter, 0.0, 1.0);
    auto const cut = static_cast<int64_t>(static_cast<double>(nominal) * 0.25 * jitter);
    return std::chrono::duration_cast<Duration>(Ms(nominal - cut));
}

std::optional<int64_t> parse_retry_after(std::string_view value)
{
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
    if (value.empty())
        return std::nullopt;
    int64_t seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec != std::errc {} || end != value.data() + value.size() || seconds < 0)
        return std::nullopt;
    return seconds;
}

void HostCircuit::on_failure(int64_t now_ms, Duration base, Duration max, double jitter)
{
    ++m_failures;
    if (!open())
        return;
    auto delay = retry_delay(m_failures - m_threshold + 1, base, max, jitter);
    m_probe_at_ms = now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(delay).count();
}

namespace {

int64_t to_ms(Duration duration)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

}

OutboxLoop::OutboxLoop(uv_loop_t* loop, Store& store, PeerDirectory& peers, HttpClient& http, Keys const& keys,
    EventSink& events, Settings settings)
    : m_loop(loop)
    , m_store(store)
    , m_peers(peers)
    , m_http(http)
    , m_keys(keys)
    , m_events(events)
    , m_settings(std::move(settings))
    , m_timer(make_timer(loop, this))
{
    // The timer alone must not keep the loop (and a stopping worker) alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(m_timer.get()));
}

OutboxLoop::~OutboxLoop()
{
    m_lifetime.end();
    for (auto& [recipient, attempt] : m_in_flight) {
        if (attempt.request != 0)
            m_http.cancel(attempt.request);
    }
}

double OutboxLoop::jitter()
{
    return static_cast<double>(randombytes_uniform(1u << 20)) / static_cast<double>(1u << 20);
}

void OutboxLoop::wake()
{
    arm(0);
}

void OutboxLoop::arm(std::optional<int64_t> at_ms)
{
    if (!at_ms) {
        uv_timer_stop(m_timer.get());
        return;
    }
    int64_t const delay = std::max<int64_t>(0, *at_ms == 0 ? 0 : *at_ms - wall_clock_ms());
    uv_timer_start(
        m_timer.get(),
        [](uv_timer_t* timer) noexcept {
            if (auto* self = static_cast<OutboxLoop*>(timer->data))
                self->scan();
        },
        static_cast<uint64_t>(delay), 0);
}

// A posta server hosts many identities under as many names, so a name is
// not the host the bounds and the circuit are about: the machine is. The
// address the worker last reached the recipient at stands for it; before any
// connection to it, its URL's "host:port" does.
std::string OutboxLoop::destination_host(std::string const& recipient) const
{
    if (auto address = m_machines.address_of(recipient))
        return std::move(*address);
    auto parsed = parse_identity_url(recipient);
    if (!parsed)
        return recipient;
    return parsed->host + ":" + std::to_string(parsed->port);
}

size_t OutboxLoop::host_in_flight(std::string const& host) const
{
    return static_cast<size_t>(std::count_if(m_in_flight.begin(), m_in_flight.end(),
        [&](auto const& entry) { return entry.second.host == host; }));
}

void OutboxLoop::scan()
{
    auto heads = m_store.queue_heads();
    if (!heads) {
        // The disk is in trouble; look again later rather than spin.
        log::error("outbox: reading the queue: %s; retrying in 5 s", heads.error().text().c_str());
        arm(wall_clock_ms() + 5000);
        return;
    }
    int64_t const now = wall_clock_ms();
    std::optional<int64_t> next;
    auto wait_until = [&](int64_t at) { next = next ? std::min(*next, at) : at; };
    for (auto& head : heads.value()) {
        if (m_in_flight.contains(head.to))
            continue; // its outcome triggers the next scan
        if (head.next_attempt_at_ms > now) {
            wait_until(head.next_attempt_at_ms);
            continue;
        }
        if (m_in_flight.size() >= m_settings.max_in_flight)
            continue; // a finishing attempt triggers the next scan
        std::string host = destination_host(head.to);
        size_t const to_host = host_in_flight(host);
        if (to_host >= m_settings.max_per_host)
            continue;
        auto circuit = m_circuits.find(host);
        if (circuit != m_circuits.end() && !circuit->second.allows(now, to_host)) {
            if (to_host == 0)
                wait_until(circuit->second.probe_at_ms());
            continue;
        }
        if (!start(std::move(head), std::move(host)))
            wait_until(now + 5000);
    }
    arm(next);
}

bool OutboxLoop::start(PendingDelivery delivery, std::string host)
{
    auto content = m_store.outgoing_content(delivery.message_seq);
    if (!content || !content.value()) {
        // Left queued and due: the disk is in trouble (a delete would have
        // cancelled the delivery, not left it queued).
        log::error("outbox: reading message %s for %s: %s; retrying in 5 s", delivery.message_id.c_str(),
            delivery.to.c_str(), content ? "not in inbox.db" : content.error().text().c_str());
        return false;
    }
    std::string recipient = delivery.to;
    Attempt attempt { std::move(delivery), std::move(*content.value()), std::move(host), 0 };
    m_in_flight.emplace(recipient, std::move(attempt));

    auto cached = m_peers.cached(recipient);
    if (cached && cached.value()) {
        send(recipient, *cached.value());
        return true;
    }
    m_peers.fetch(recipient, [this, alive = m_lifetime.guard(), recipient](Result<Peer> peer) {
        if (!alive)
            return;
        if (peer) {
            send(recipient, peer.value());
            return;
        }
        if (peer_problem(peer.error()) == PeerProblem::Cancelled) {
            finish(recipient, AttemptOutcome::Abandoned, std::nullopt, {}, std::nullopt);
            return;
        }
        // No usable document (yet): the recipient may be down or mid-setup.
        finish(recipient, AttemptOutcome::Retry, std::nullopt,
            "identity document: " + peer.error().text(), std::nullopt);
    });
    return true;
}

void OutboxLoop::send(std::string const& recipient, Peer const& peer)
{
    auto it = m_in_flight.find(recipient);
    if (it == m_in_flight.end())
        return;
    PendingDelivery const& delivery = it->second.delivery;
    OutgoingContent content = std::move(it->second.content);
    Envelope envelope;
    envelope.id = delivery.message_id;
    envelope.from = m_settings.own_url;
    envelope.to = delivery.to;
    envelope.sent_at = std::move(content.sent_at);
    envelope.subject = std::move(content.subject);
    envelope.content_type = std::move(content.content_type);
    envelope.body = std::move(content.body);

    HttpClientRequest request;
    request.method = "POST";
    request.url = peer.inbox;
    request.body = make_envelope_json(envelope);
    envelope = {}; // the request has the bytes now
    request.headers.emplace_back("Content-Type", "application/json");
    request.headers.emplace_back(std::string(signature_header), format_signature_header(m_keys.sign(request.body)));

    it->second.request = m_http.start(std::move(request),
        [this, alive = m_lifetime.guard(), recipient](Result<HttpClientResponse> response) {
            if (!alive)
                return;
            if (!response) {
                auto kind = http_client_error(response.error());
                if (kind == HttpClientError::Refused)
                    log::warn("outbox: delivery to %s: %s", recipient.c_str(), response.error().text().c_str());
                finish(recipient, classify_error(kind), std::nullopt, response.error().text(), std::nullopt);
                return;
            }
            auto const& answer = response.value();
            std::optional<int64_t> retry_after;
            if (answer.status == 429)
                retry_after = parse_retry_after(answer.header("retry-after"));
            finish(recipient, classify_status(answer.status), answer.status, answer.body, retry_after);
        });
}

void OutboxLoop::finish(std::string const& recipient, AttemptOutcome outcome, std::optional<int> status,
    std::string error, std::optional<int64_t> retry_after_s)
{
    auto it = m_in_flight.find(recipient);
    if (it == m_in_flight.end())
        return;
    Attempt attempt = std::move(it->second);
    m_in_flight.erase(it);
    if (outcome == AttemptOutcome::Abandoned)
        return; // still queued in the store: the next start sends it

    int64_t const now = wall_clock_ms();
    PendingDelivery const& delivery = attempt.delivery;
    // What the recipient's side sent is shown to the owner: a short,
    // printable excerpt only.
    error = printable_excerpt(error, m_settings.kept_error_bytes);

    DeliveryUpdate update;
    if (status)
        update.last_status = *status;
    auto& circuit = m_circuits.try_emplace(attempt.host, m_settings.circuit_threshold).first->second;
    switch (outcome) {
    case AttemptOutcome::Delivered:
        update.state = DeliveryState::Delivered;
        circuit.on_success();
        break;
    case AttemptOutcome::Failed:
        update.state = DeliveryState::Failed;
        update.last_error = error;
        break;
    case AttemptOutcome::Retry: {
        circuit.on_failure(now, m_settings.retry_base, m_settings.retry_max, jitter());
        update.last_error = error;
        int64_t const give_up_at = delivery.queued_at_ms + to_ms(m_settings.give_up);
        int64_t delay = to_ms(retry_delay(delivery.attempts + 1, m_settings.retry_base, m_settings.retry_max, jitter()));
        if (retry_after_s)
            delay = std::max<int64_t>(0, *retry_after_s) * 1000;
        if (now >= give_up_at) {
            update.state = DeliveryState::Failed;
            update.last_error = printable_excerpt(
                "gave up after " + std::to_string(delivery.attempts + 1) + " attempts; last: " + error,
                m_settings.kept_error_bytes);
        } else {
            update.state = DeliveryState::Queued;
            update.next_attempt_at_ms = std::min(now + delay, give_up_at);
        }
        break;
    }
    case AttemptOutcome::Abandoned:
        break;
    }

    auto event = m_store.update_delivery(delivery.message_seq, delivery.to, update, now, m_events);
    if (!event) {
        // Left queued and due: the next scan tries again (at-least-once).
        log::error("outbox: recording the delivery of %s to %s: %s", delivery.message_id.c_str(),
            delivery.to.c_str(), event.error().text().c_str());
        arm(now + 5000);
        return;
    }
    if (!event.value()) {
        wake();
        return;
    }
    if (update.state == DeliveryState::Failed)
        log::warn("outbox: delivery of %s to %s failed: %s", delivery.message_id.c_str(), delivery.to.c_str(),
            update.last_error ? update.last_error->c_str() : "");
    m_events.publish(*event.value());
    wake();
}

}
