// Inbox: `POST /inbox` of one identity (PROTOCOL.md, "Delivery"), in the
// worker of that identity. It runs the protocol's checks in their order
// (rate limits, envelope, recipient, ACL, signature against the sender's key
// from the PeerDirectory), stores what passes in group commits and publishes
// each new message's event through the EventSink. It owns its rate limiters,
// the batch waiting for the next commit and that batch's timer; the store,
// the peer directory, the sink and the policy are the worker's.
#pragma once

#include "common/lifetime.h"
#include "ipc/policy.h"
#include "common/result.h"
#include "common/uv_handle.h"
#include "ipc/worker_report.h"
#include "protocol/envelope.h"
#include "http/http_message.h"
#include "worker/peer_directory.h"
#include "http/responder.h"
#include "protocol/signature.h"
#include "worker/event_sink.h"
#include "worker/store.h"
#include "worker/token_bucket.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace posta {

class Router;
struct IdentityEntry;

// The authentication scheme of a 401 from the inbox, for its
// WWW-Authenticate challenge (RFC 9110 section 11.6.1): "sign the body and
// send the signature in Posta-Signature".
constexpr std::string_view signature_auth_scheme = "Posta-Signature";

class Inbox {
public:
    // `policy` is read at every request, so a Policy the supervisor sends
    // after a reload applies from the next delivery on. Each message stored
    // (not a duplicate) has its message.received event published to
    // `events` after the commit and its answer, in commit order. Store,
    // directory, policy and sink must outlive the inbox. Fails only on a bad
    // identity URL.
    static Result<std::unique_ptr<Inbox>> create(uv_loop_t*, IdentityEntry const&, Store&, PeerDirectory&,
        Policy const& policy, EventSink& events);

    // Drops the batch not yet committed (its requests get no answer; call
    // this after their connections are gone) and closes the timer.
    ~Inbox();
    Inbox(Inbox const&) = delete;
    Inbox& operator=(Inbox const&) = delete;

    // POST /inbox.
    void add_routes(Router&);

    // What the inbox answered since it was made, for the worker's metrics:
    // stored, duplicates, and refusals by the error code answered.
    uint64_t accepted() const { return m_accepted; }
    uint64_t duplicates() const { return m_duplicates; }
    CodeCounts const& refusals() const { return m_refusals; }
    // Changes whenever one of the three does.
    uint64_t answered() const { return m_answered; }

private:
    enum class KeySource { Cache, Fetch, Refetch };
    struct Delivery; // one request between its checks and its answer
    struct Trampolines;

    Inbox(uv_loop_t*, std::string url, Store&, PeerDirectory&, Policy const&, EventSink&);

    void handle(Request, Responder);
    void on_key(std::shared_ptr<Delivery> const&, Result<Peer>, KeySource);
    void verify(std::shared_ptr<Delivery> const&, Peer const&, KeySource);
    void enqueue(std::shared_ptr<Delivery> const&);
    void commit_batch();
    void sync_rate_limits();
    // Logs one refused delivery, counts it and answers it. `sender` is the
    // claimed `from`, empty before the body was parsed.
    void refuse(Responder const& responder, std::string const& client, std::string const& sender, int status,
        std::string_view code, std::string const& message, Headers extra = {});

    std::string m_url; // this identity's, canonical
    Store& m_store;
    PeerDirectory& m_peers;
    Policy const& m_policy;
    EventSink& m_events;
    unsigned m_rate = 0; // the rate_per_minute the limiters were made for
    RateLimiter m_by_address;
    RateLimiter m_by_sender;
    std::vector<std::shared_ptr<Delivery>> m_batch;
    uint64_t m_accepted = 0;
    uint64_t m_duplicates = 0;
    uint64_t m_answered = 0;
    CodeCounts m_refusals;
    UvHandle<uv_timer_t> m_commit_timer; // due at once while m_batch is not empty
    // Peer callbacks hold its guard: one that runs after the inbox died
    // finds it expired.
    Lifetime m_lifetime;
};

}
