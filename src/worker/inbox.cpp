// A delivery's way through the inbox, in PROTOCOL.md's order (cheap checks
// before expensive ones):
//   handle()   rate limit on the client address; parse_envelope (400); rate
//              limit on the claimed sender (429); `to` (421); ACL (403);
//              Posta-Signature header (400/401); the sender's key from the
//              cache, or else a fetch (the request waits, the loop does not);
//   verify()   ed25519 over the exact body bytes; a failure against a cached
//              key asks the directory for one forced refetch, then 401;
//   enqueue()  into the batch of this loop turn;
//   commit_batch()  one accept_inbound() transaction for the whole batch,
//              then 202/200 for each, then each new one's event published.
// The body over max_body_bytes (413) never reaches us: HttpSession refuses
// it from its Content-Length, or as soon as a chunked body passes the bound,
// before anything here runs, and without ever truncating it.
//
// Group commit: a delivery verified during one loop turn waits for a zero
// timer, which runs on the next turn after every ready socket was read, so
// all deliveries that arrived together share one fsync. No answer goes out
// before its commit returned, so a 202 or 200 is on disk.
#include "inbox.h"

#include "common/duration.h"
#include "common/host_key.h"
#include "common/log.h"
#include "config/manifest.h"
#include "http/router.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <exception>
#include <utility>

namespace posta {

struct Inbox::Delivery {
    Delivery(Envelope envelope_, Ed25519Signature signature_, Responder responder_, std::string client_)
        : envelope(std::move(envelope_))
        , signature(signature_)
        , responder(std::move(responder_))
        , client(std::move(client_))
    {
    }

    Envelope envelope;
    Ed25519Signature signature {};
    Responder responder;
    std::string client; // "203.0.113.7:51234", for logs
};

struct Inbox::Trampolines {
    static void on_commit_timer(uv_timer_t* timer) noexcept
    {
        if (auto* self = static_cast<Inbox*>(timer->data))
            self->commit_batch();
    }
};

namespace {

// Refs: RFC 9110 section 11.6.1: a 401 carries at least one challenge.
Headers signature_challenge()
{
    Headers headers;
    headers.set("WWW-Authenticate", std::string(signature_auth_scheme) + " algorithm=\"ed25519\"");
    return headers;
}

Headers retry_after(RateDecision decision)
{
    Headers headers;
    headers.set("Retry-After", std::to_string(decision.retry_after_seconds));
    return headers;
}

}

void Inbox::refuse(Responder const& responder, std::string const& client, std::string const& sender, int status,
    std::string_view code, std::string const& message, Headers extra)
{
    ++m_answered;
    m_refusals.add(code);
    std::string who = sender.empty() ? client : client + " (from " + sender + ")";
    // Rate-limited requests come in floods; a line each would be one more.
    if (status == 429)
        log::debug("inbox: %d %.*s for %s", status, static_cast<int>(code.size()), code.data(), who.c_str());
    else
        log::info("inbox: %d %.*s for %s: %s", status, static_cast<int>(code.size()), code.data(), who.c_str(),
            message.c_str());
    Response response = Response::error(status, code, message);
    for (auto const& [name, value] : extra)
        response.headers.set(name, value);
    responder.respond(std::move(response));
}

Result<std::unique_ptr<Inbox>> Inbox::create(uv_loop_t* loop, IdentityEntry const& identity, Store& store,
    PeerDirectory& peers, Policy const& policy, EventSink& events)
{
    auto url = parse_identity_url(identity.url);
    if (!url)
        return url.error();
    return std::unique_ptr<Inbox>(new Inbox(loop, std::move(url->canonical), store, peers, policy, events));
}

Inbox::Inbox(uv_loop_t* loop, std::string url, Store& store, PeerDirectory& peers, Policy const& policy,
    EventSink& events)
    : m_url(std::move(url))
    , m_store(store)
    , m_peers(peers)
    , m_policy(policy)
    , m_events(events)
    , m_rate(policy.rate_per_minute)
    , m_by_address(policy.rate_per_minute)
    , m_by_sender(policy.rate_per_minute)
    , m_commit_timer(make_timer(loop, this))
{
}

Inbox::~Inbox()
{
    if (!m_batch.empty())
        log::warn("inbox: %zu verified deliveries dropped uncommitted at exit (their senders got no answer and "
                  "will retry)",
            m_batch.size());
}

void Inbox::add_routes(Router& router)
{
    router.add("POST", "/inbox", [this](Request request, Responder responder) {
        handle(std::move(request), std::move(responder));
    });
}

void Inbox::sync_rate_limits()
{
    // A reload changed --rate-per-minute: start over with fresh buckets
    // (that is, full ones) at the new rate.
    if (m_policy.rate_per_minute == m_rate)
        return;
    m_rate = m_policy.rate_per_minute;
    m_by_address = RateLimiter(m_rate);
    m_by_sender = RateLimiter(m_rate);
}

void Inbox::handle(Request request, Responder responder)
{
    auto const steady_now = RateLimiter::Clock::now();
    std::string const& client = request.client_address;
    std::string const& address = request.client_host.empty() ? request.client_address : request.client_host;

    // 1. The client address, before a byte of the body is looked at.
    sync_rate_limits();
    if (auto decision = m_by_address.check(address, steady_now); !decision.allowed) {
        refuse(responder, client, {}, 429, "rate_limited",
            "too many deliveries from " + address + "; retry after "
                + std::to_string(decision.retry_after_seconds) + " seconds",
            retry_after(decision));
        return;
    }

    // 2. Shape, fields, version, sent_at (the size was the session's).
    auto parsed = parse_envelope(std::move(request.body), std::chrono::system_clock::now());
    if (!parsed) {
        EnvelopeRejection const& rejection = parsed.error();
        refuse(responder, client, {}, EnvelopeRejection::http_status, rejection.code(), rejection.message);
        return;
    }
    Envelope envelope = std::move(parsed).value();

    // 1, continued: the claimed sender, known only now.
    if (auto decision = m_by_sender.check(envelope.from, steady_now); !decision.allowed) {
        refuse(responder, client, envelope.from, 429, "rate_limited",
            "too many deliveries from " + envelope.from + "; retry after "
                + std::to_string(decision.retry_after_seconds) + " seconds",
            retry_after(decision));
        return;
    }

    // 3. Both URLs are canonical (parse_envelope made `to` so).
    if (envelope.to != m_url) {
        refuse(responder, client, envelope.from, 421, "wrong_recipient",
            "this is the inbox of " + m_url + ", not of " + envelope.to);
        return;
    }

    // 4.
    if (!m_policy.acl.admits(envelope.from)) {
        refuse(responder, client, envelope.from, 403, "sender_denied",
            "this server does not accept deliveries from " + envelope.from);
        return;
    }

    // 5. The header first (no key is worth fetching for an unreadable one).
    auto signature = signature_from_headers(request.headers);
    if (!signature) {
        SignatureRejection const& rejection = signature.error();
        int status = rejection.http_status();
        refuse(responder, client, envelope.from, status, rejection.code(), rejection.message,
            status == 401 ? signature_challenge() : Headers {});
        return;
    }

    auto delivery = std::make_shared<Delivery>(std::move(envelope), signature.value(), std::move(responder), client);
    auto cached = m_peers.cached(delivery->envelope.from);
    if (!cached) {
        log::error("inbox: %s", cached.error().text().c_str());
        refuse(delivery->responder, client, delivery->envelope.from, 500, "internal_error",
            "the sender's key could not be looked up; try again later");
        return;
    }
    if (cached.value()) {
        verify(delivery, *cached.value(), KeySource::Cache);
        return;
    }
    m_peers.fetch(delivery->envelope.from, [this, alive = m_lifetime.guard(), delivery](Result<Peer> peer) {
        if (alive)
            on_key(delivery, std::move(peer), KeySource::Fetch);
    });
}

void Inbox::on_key(std::shared_ptr<Delivery> const& delivery, Result<Peer> peer, KeySource source)
{
    Delivery const& d = *delivery;
    if (!d.responder.pending()) {
        // The client left while we fetched; it will send again.
        log::debug("inbox: %s from %s: client gone before its sender's key came", d.envelope.id.c_str(),
            d.envelope.from.c_str());
        return;
    }
    if (peer) {
        verify(delivery, peer.value(), source);
        return;
    }
    // A stranger learns what to fix in protocol terms, never how our fetch
    // went (no addresses, no transport errors, nothing of the reply): that
    // would make this worker a probe of whatever `from` names. The
    // directory has logged the details.
    Error const& error = peer.error();
    switch (peer_problem(error)) {
    case PeerProblem::Unreachable:
        refuse(d.responder, d.client, d.envelope.from, 502, "sender_unreachable",
            "the sender's identity document at " + d.envelope.from
                + "/.well-known/posta could not be fetched; retry later");
        return;
    case PeerProblem::BadDocument:
        refuse(d.responder, d.client, d.envelope.from, 502, "invalid_sender_document",
            "the sender's identity document at " + d.envelope.from
                + "/.well-known/posta is not a valid posta identity document (posta 1, its url, a public_key, "
                  "inbox = url + \"/inbox\"); retry once it is fixed");
        return;
    case PeerProblem::Cancelled: {
        Headers headers;
        headers.set("Retry-After", "1");
        refuse(d.responder, d.client, d.envelope.from, 503, "unavailable",
            "this server is stopping; retry shortly", std::move(headers));
        return;
    }
    case PeerProblem::Store:
        break;
    }
    log::error("inbox: %s", error.text().c_str());
    refuse(d.responder, d.client, d.envelope.from, 500, "internal_error",
        "the sender's key could not be looked up; try again later");
}

void Inbox::verify(std::shared_ptr<Delivery> const& delivery, Peer const& peer, KeySource source)
{
    Delivery const& d = *delivery;
    // Over the bytes as received: Envelope::raw is the untouched body.
    if (verify_signature(d.envelope.raw, d.signature, peer.public_key)) {
        enqueue(delivery);
        return;
    }
    if (source == KeySource::Cache) {
        // The sender may have rotated its key since we cached it.
        bool refetching = m_peers.refetch(d.envelope.from,
            [this, alive = m_lifetime.guard(), delivery](Result<Peer> fresh) {
                if (alive)
                    on_key(delivery, std::move(fresh), KeySource::Refetch);
            });
        if (refetching)
            return;
    }
    refuse(d.responder, d.client, d.envelope.from, 401, "bad_signature",
        "the Posta-Signature is not a signature of this body by the key of " + d.envelope.from,
        signature_challenge());
}

void Inbox::enqueue(std::shared_ptr<Delivery> const& delivery)
{
    // The bytes were for the signature; the store takes the fields.
    delivery->envelope.raw = std::string();
    m_batch.push_back(delivery);
    if (m_batch.size() == 1 && m_commit_timer)
        uv_timer_start(m_commit_timer.get(), &Trampolines::on_commit_timer, 0, 0);
}

void Inbox::commit_batch()
{
    std::vector<std::shared_ptr<Delivery>> batch = std::exchange(m_batch, {});
    if (batch.empty())
        return;
    std::vector<InboundMessage> messages;
    messages.reserve(batch.size());
    for (auto const& delivery : batch) {
        Envelope& e = delivery->envelope;
        messages.push_back(InboundMessage { e.id, e.from, e.to, e.sent_at, std::move(e.subject),
            std::move(e.content_type), std::move(e.body) });
    }

    // Blocks for the fsync; everything in the batch waits for the same one.
    auto outcomes = m_store.accept_inbound(messages, wall_clock_ms(), m_events);
    if (outcomes && outcomes->size() != batch.size())
        outcomes = Error::message("accept_inbound", "returned " + std::to_string(outcomes->size())
                + " outcomes for " + std::to_string(batch.size()) + " messages (a bug)");
    if (!outcomes) {
        log::error("inbox: cannot store %zu deliveries: %s", batch.size(), outcomes.error().text().c_str());
        for (auto const& delivery : batch)
            refuse(delivery->responder, delivery->client, delivery->envelope.from, 500, "internal_error",
                "the message could not be stored; retry later");
        return;
    }

    log::debug("inbox: committed %zu deliveries in one transaction", batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
        Delivery const& d = *batch[i];
        bool duplicate = outcomes.value()[i].duplicate;
        log::info("inbox: %s from %s (%s): %s", d.envelope.id.c_str(), d.envelope.from.c_str(), d.client.c_str(),
            duplicate ? "duplicate" : "accepted");
        ++m_answered;
        ++(duplicate ? m_duplicates : m_accepted);
        if (duplicate)
            d.responder.respond(Response::json(200, { { "status", "duplicate" } }));
        else
            d.responder.respond(Response::json(202, { { "status", "accepted" } }));
    }

    LifetimeGuard alive = m_lifetime.guard();
    for (InboundOutcome const& outcome : outcomes.value()) {
        if (outcome.duplicate)
            continue;
        try {
            m_events.publish(outcome.event);
        } catch (std::exception const& e) {
            log::error("inbox: publishing event %lld failed: %s", static_cast<long long>(outcome.event.seq), e.what());
        } catch (...) {
            log::error("inbox: publishing event %lld failed", static_cast<long long>(outcome.event.seq));
        }
        if (!alive)
            return; // a subscriber's callback destroyed us
    }
}

}
