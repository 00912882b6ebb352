// PeerDirectory: what a worker knows of other identities — their identity
// documents (PROTOCOL.md, "Identity document"): the public key the inbox
// checks a sender's signature with, and the inbox the outbox delivers to.
// Entries live in the store's peer cache (inbox.db, table peers) for an
// hour; a miss is fetched from `<url>/.well-known/posta` through the worker's
// HttpClient, never blocking the loop. It owns the fetches in flight and the
// callbacks waiting on them; the Store and the HttpClient are the worker's.
#pragma once

#include "common/duration.h"
#include "common/lifetime.h"
#include "common/result.h"
#include "http/http_client.h"
#include "protocol/signature.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace posta {

class Store;

// One identity document, checked.
struct Peer {
    std::string url;   // the identity URL, canonical (it equals the URL asked for)
    std::string name;  // display name; may be empty
    std::string inbox; // where deliveries go: always url + "/inbox"
    Ed25519PublicKey public_key {};
    int64_t fetched_at_ms = 0; // when the document was fetched (Unix ms)
};

// Why no Peer came back: the code of its Error (domain Peer, op "peer",
// context the identity URL, detail the reason in words).
enum class PeerProblem : int {
    Unreachable = 1, // no document: connect/TLS/timeout error, or a status other than 200
    BadDocument,     // a 200 whose body is not a valid document of that URL
    Store,           // inbox.db failed
    Cancelled,       // the HttpClient was closed (the worker is stopping)
};
template<>
struct ErrorDomainOf<PeerProblem> {
    static constexpr ErrorDomain value = ErrorDomain::Peer;
};

// The kind of an Error from this file (Store for one that is not).
PeerProblem peer_problem(Error const&);

// Checks an identity document fetched for `expected_url` (canonical): a JSON
// object with `posta` the integer 1, `url` an identity URL whose canonical
// form equals `expected_url`, `public_key` unpadded base64url of exactly 32
// bytes, `inbox` that URL (as written or canonical) + "/inbox", and `name`
// a string if present. Fields it does not know are ignored. The error
// (BadDocument) says what is wrong.
Result<Peer> parse_peer_document(std::string_view body, std::string_view expected_url, int64_t fetched_at_ms);

struct PeerDirectoryLimits {
    Duration cache_ttl = std::chrono::hours(1);
    // Forced refetches (a signature failed against a cached key) of one peer
    // are at most this often.
    Duration refetch_interval = std::chrono::minutes(5);
    Duration fetch_timeout = std::chrono::seconds(5); // connect and whole request
    size_t max_document_bytes = 64 * 1024;
};

class PeerDirectory {
public:
    using Limits = PeerDirectoryLimits;
    using Callback = std::function<void(Result<Peer>)>;
    using WallClock = std::function<std::chrono::system_clock::time_point()>;

    // Both must outlive the directory. `clock` is for tests.
    PeerDirectory(Store&, HttpClient&, Limits = Limits {}, WallClock clock = &std::chrono::system_clock::now);
    // Cancels its fetches; the callbacks still waiting are destroyed without
    // being called.
    ~PeerDirectory();
    PeerDirectory(PeerDirectory const&) = delete;
    PeerDirectory& operator=(PeerDirectory const&) = delete;

    // The cache entry of `url` (canonical) if it was fetched less than
    // cache_ttl ago; nullopt when there is none or it is stale. Never
    // fetches; an error is the store's.
    Result<std::optional<Peer>> cached(std::string_view url);

    // Fetches `url`'s document (`url` is a canonical identity URL), saves it
    // in the cache and calls `done` with it, or with why there is none. A
    // fetch of the same URL already in flight is joined rather than repeated,
    // so a burst of deliveries from one new sender costs one request. `done`
    // is called exactly once, from the loop, never from inside fetch(); it
    // must not throw.
    void fetch(std::string const& url, Callback done);

    // A forced refetch, after a signature failed against `url`'s cached key
    // (the peer may have rotated it). Returns false, and never calls `done`,
    // when there is no cache entry to refresh or `url` was refetched less
    // than refetch_interval ago; otherwise records the refetch (it counts
    // when it starts, whatever its outcome), does fetch() and returns true.
    bool refetch(std::string const& url, Callback done);

    // URLs with a fetch in flight.
    size_t fetches_in_flight() const { return m_fetches.size(); }

private:
    struct Fetch {
        HttpRequestId request = 0;
        std::vector<Callback> waiters;
    };

    int64_t now_ms() const;
    void on_fetched(std::string const& url, Result<HttpClientResponse>);
    Result<Peer> check_response(std::string const& url, Result<HttpClientResponse>);
    void save(Peer const&);

    Store& m_store;
    HttpClient& m_http;
    Limits m_limits;
    WallClock m_clock;
    std::unordered_map<std::string, Fetch> m_fetches; // by URL
    // HttpClient callbacks hold its guard: one that runs after the directory
    // died (a Cancelled, say) finds it expired and does nothing.
    Lifetime m_lifetime;
};

}
