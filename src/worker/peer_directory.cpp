// A fetch's life: fetch() files the caller under the URL in m_fetches and
// starts one GET unless one is in flight; on_fetched() takes the whole list
// out of the map before calling anyone, so a waiter may fetch the same URL
// again (a new entry) or destroy the directory (m_lifetime tells the loop).
//
// The cache is inbox.db's peers table, so entries survive restarts and the
// forced-refetch budget (peers.refetched_at) does too: a sender cannot reset
// it by crashing us.
#include "peer_directory.h"

#include "common/excerpt.h"
#include "common/host_key.h"
#include "protocol/base64url.h"
#include "common/log.h"
#include "worker/store.h"

#include <nlohmann/json.hpp>

#include <utility>

namespace posta {

namespace {

Error peer_error(PeerProblem problem, std::string detail, std::string url)
{
    return Error::of(problem, "peer", std::move(detail), std::move(url));
}

// Statuses that say "try again later" rather than "there is no document".
bool is_transient_status(int status) { return status == 408 || status == 429 || status >= 500; }

}

PeerProblem peer_problem(Error const& error)
{
    return error.code_as<PeerProblem>().value_or(PeerProblem::Store);
}

Result<Peer> parse_peer_document(std::string_view body, std::string_view expected_url, int64_t fetched_at_ms)
{
    auto bad = [&](std::string why) {
        return peer_error(PeerProblem::BadDocument, "identity document: " + std::move(why), std::string(expected_url));
    };
    // No exceptions: a parse failure is a discarded value, and every access
    // below checks the type first.
    nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
    if (doc.is_discarded())
        return bad("not JSON");
    if (!doc.is_object())
        return bad("not a JSON object");

    auto posta = doc.find("posta");
    if (posta == doc.end() || !posta->is_number() || *posta != 1)
        return bad("\"posta\" is not 1");

    auto url = doc.find("url");
    if (url == doc.end() || !url->is_string())
        return bad("\"url\" is missing or not a string");
    auto parsed_url = parse_identity_url(url->get_ref<std::string const&>());
    if (!parsed_url)
        return bad("\"url\" is not an identity URL: " + parsed_url.error().detail);
    if (parsed_url->canonical != expected_url)
        return bad("\"url\" is " + parsed_url->canonical + ", not the URL it was fetched for");

    Peer peer;
    peer.url = std::move(parsed_url->canonical);
    peer.fetched_at_ms = fetched_at_ms;

    auto key = doc.find("public_key");
    if (key == doc.end() || !key->is_string())
        return bad("\"public_key\" is missing or not a string");
    if (!base64url_decode_exact(key->get_ref<std::string const&>(), peer.public_key))
        return bad("\"public_key\" is not unpadded base64url of 32 bytes");

    // PROTOCOL.md: the inbox is the identity URL + "/inbox", so a document
    // cannot aim deliveries (or anything else) at another host or path.
    auto inbox = doc.find("inbox");
    if (inbox == doc.end() || !inbox->is_string())
        return bad("\"inbox\" is missing or not a string");
    std::string const& written = inbox->get_ref<std::string const&>();
    if (written != peer.url + "/inbox" && written != url->get_ref<std::string const&>() + "/inbox")
        return bad("\"inbox\" is \"" + printable_excerpt(written, 200) + "\", not its url + \"/inbox\" ("
            + peer.url + "/inbox)");
    peer.inbox = peer.url + "/inbox";

    if (auto name = doc.find("name"); name != doc.end()) {
        if (!name->is_string())
            return bad("\"name\" is not a string");
        peer.name = name->get<std::string>();
    }
    return peer;
}

PeerDirectory::PeerDirectory(Store& store, HttpClient& http, Limits limits, WallClock clock)
    : m_store(store)
    , m_http(http)
    , m_limits(limits)
    , m_clock(std::move(clock))
{
}

PeerDirectory::~PeerDirectory()
{
    m_lifetime.end();
    // Cancelled callbacks still come, later; they find the guard expired.
    auto fetches = std::exchange(m_fetches, {});
    for (auto& [url, fetch] : fetches)
        m_http.cancel(fetch.request);
}

int64_t PeerDirectory::now_ms() const
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(m_clock().time_since_epoch()).count();
}

Result<std::optional<Peer>> PeerDirectory::cached(std::string_view url)
{
    auto record = m_store.find_peer(url);
    if (!record)
        return peer_error(PeerProblem::Store, record.error().text(), std::string(url));
    if (!record.value())
        return std::optional<Peer> {};
    PeerRecord const& row = *record.value();
    int64_t age = now_ms() - row.fetched_at_ms;
    // An entry from the future (the clock was set back) counts as stale.
    if (age < 0 || age >= m_limits.cache_ttl.count())
        return std::optional<Peer> {};
    Peer peer;
    peer.url = row.url;
    peer.name = row.name;
    peer.inbox = row.inbox;
    peer.fetched_at_ms = row.fetched_at_ms;
    if (row.inbox != row.url + "/inbox") {
        // Cached before documents were held to their url + "/inbox": ask
        // again, and the document is checked as any other.
        return std::optional<Peer> {};
    }
    if (!base64url_decode_exact(row.public_key, peer.public_key)) {
        // Only we write this table; treat a broken row as a miss and let
        // the next fetch overwrite it.
        log::warn("peer cache: %s has a malformed public key in %s; fetching it again", row.url.c_str(),
            m_store.path().c_str());
        return std::optional<Peer> {};
    }
    return std::optional<Peer>(std::move(peer));
}

void PeerDirectory::fetch(std::string const& url, Callback done)
{
    auto [it, inserted] = m_fetches.try_emplace(url);
    it->second.waiters.push_back(std::move(done));
    if (!inserted)
        return; // joined the fetch in flight

    HttpClientRequest request;
    request.method = "GET";
    request.url = url + "/.well-known/posta";
    request.headers.emplace_back("Accept", "application/json");
    request.connect_timeout = m_limits.fetch_timeout;
    request.timeout = m_limits.fetch_timeout;
    request.max_response_bytes = m_limits.max_document_bytes;
    // start() never calls back from inside itself, so the entry is complete
    // (its request id set) before on_fetched() can look for it.
    it->second.request = m_http.start(std::move(request),
        [this, alive = m_lifetime.guard(), url](Result<HttpClientResponse> response) {
            if (alive)
                on_fetched(url, std::move(response));
        });
}

bool PeerDirectory::refetch(std::string const& url, Callback done)
{
    auto record = m_store.find_peer(url);
    if (!record) {
        log::error("peer cache: %s", record.error().text().c_str());
        return false;
    }
    if (!record.value())
        return false;
    int64_t now = now_ms();
    if (auto last = record.value()->refetched_at_ms) {
        int64_t since = now - *last;
        if (since >= 0 && since < m_limits.refetch_interval.count())
            return false;
    }
    // Recorded before the fetch, so a flood of bad signatures during the
    // fetch joins it instead of starting more.
    if (auto marked = m_store.mark_peer_refetched(url, now); !marked) {
        log::error("peer cache: %s", marked.error().text().c_str());
        return false;
    }
    log::info("peer %s: a signature failed against its cached key; fetching its document again", url.c_str());
    fetch(url, std::move(done));
    return true;
}

Result<Peer> PeerDirectory::check_response(std::string const& url, Result<HttpClientResponse> response)
{
    if (!response) {
        Error const& error = response.error();
        HttpClientError kind = http_client_error(error);
        if (kind == HttpClientError::Cancelled)
            return peer_error(PeerProblem::Cancelled, "the fetch of its identity document was cancelled", url);
        std::string detail = std::string("GET /.well-known/posta failed (") + http_client_error_name(kind) + ")";
        if (!error.detail.empty())
            detail += ": " + error.detail;
        // A document over the bound is no document we accept, but it came:
        // the peer is reachable and serves something wrong.
        return peer_error(kind == HttpClientError::TooLarge ? PeerProblem::BadDocument : PeerProblem::Unreachable,
            std::move(detail), url);
    }
    int status = response->status;
    if (status != 200) {
        // A 404 and the like (nothing there is a posta identity, now) is
        // "unreachable" too: the peer's operator can fix it, and a retry
        // then succeeds.
        std::string detail = "GET /.well-known/posta answered " + std::to_string(status);
        if (!is_transient_status(status))
            detail += " (no identity document there)";
        return peer_error(PeerProblem::Unreachable, std::move(detail), url);
    }
    return parse_peer_document(response->body, url, now_ms());
}

void PeerDirectory::save(Peer const& peer)
{
    // refetched_at_ms stays unset, so the store keeps the refetch budget:
    // saving a document must not forget when the last forced refetch was.
    PeerRecord record;
    record.url = peer.url;
    record.public_key = base64url_encode(peer.public_key);
    record.name = peer.name;
    record.inbox = peer.inbox;
    record.fetched_at_ms = peer.fetched_at_ms;
    if (auto saved = m_store.save_peer(record); !saved)
        log::error("peer cache: cannot save %s: %s", peer.url.c_str(), saved.error().text().c_str());
}

void PeerDirectory::on_fetched(std::string const& url, Result<HttpClientResponse> response)
{
    auto it = m_fetches.find(url);
    if (it == m_fetches.end())
        return; // cancelled by the destructor
    std::vector<Callback> waiters = std::move(it->second.waiters);
    m_fetches.erase(it);

    Result<Peer> peer = check_response(url, std::move(response));
    if (peer) {
        // The key is good whether or not the cache write works; a failed
        // write only costs a fetch next time.
        save(peer.value());
        log::debug("peer %s: fetched its identity document", url.c_str());
    } else if (peer_problem(peer.error()) != PeerProblem::Cancelled) {
        log::warn("peer %s: %s", url.c_str(), peer.error().detail.c_str());
    }

    LifetimeGuard alive = m_lifetime.guard();
    for (auto& waiter : waiters) {
        // A waiter may destroy the directory; the rest are then dropped,
        // as the destructor promises.
        if (!alive)
            return;
        waiter(peer);
    }
}

}
