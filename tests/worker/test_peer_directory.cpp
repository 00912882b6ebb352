// PeerDirectory: identity documents checked field by field, the peer cache's
// one-hour TTL, the forced-refetch budget, and fetches of one URL coalesced.
// Fetches go to a bound but not listening port on 127.0.0.1, which refuses
// at once; fetches that succeed are covered end to end (tests/e2e/test_inbox.py).
#include "support/test_loop.h"
#include "support/test_support.h"
#include "protocol/base64url.h"
#include "http/http_client.h"
#include "worker/peer_directory.h"
#include "worker/store.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <nlohmann/json.hpp>

using namespace posta;
using namespace posta::test;

namespace {

constexpr std::string_view peer_url = "http://peer.example:8080";

std::string key_b64(unsigned char fill)
{
    Ed25519PublicKey key {};
    key.fill(fill);
    return base64url_encode(key);
}

std::string document(nlohmann::json changes = nlohmann::json::object())
{
    nlohmann::json doc = { { "posta", 1 }, { "url", peer_url }, { "name", "Peer" },
        { "public_key", key_b64(7) }, { "inbox", std::string(peer_url) + "/inbox" } };
    for (auto& [name, value] : changes.items()) {
        if (value.is_null())
            doc.erase(name);
        else
            doc[name] = value;
    }
    return doc.dump();
}

Error parse_error(std::string const& body)
{
    auto peer = parse_peer_document(body, peer_url, 0);
    REQUIRE_FALSE(peer.ok());
    CHECK(peer_problem(peer.error()) == PeerProblem::BadDocument);
    return peer.error();
}

// A store, a client and a directory whose clock the test sets.
struct Fixture {
    Fixture()
        : store(open_store(dir))
    {
        REQUIRE(posta::HttpClient::init_global().ok());
        auto client = posta::HttpClient::create(loop.get(), "test");
        REQUIRE(client.ok());
        http = std::move(client.value());
        peers = std::make_unique<PeerDirectory>(store, *http, PeerDirectoryLimits {}, [this] { return now; });
    }
    ~Fixture()
    {
        peers.reset();
        http.reset();
    }

    static Store open_store(TempDir const& dir)
    {
        auto opened = Store::open(dir.path());
        REQUIRE_MESSAGE(opened.ok(), opened.error().text());
        return std::move(opened.value());
    }

    int64_t now_ms() const
    {
        return std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    }

    void cache(std::string const& url, int64_t fetched_at_ms)
    {
        PeerRecord record { url, key_b64(9), "Cached", url + "/inbox", fetched_at_ms, std::nullopt };
        REQUIRE(store.save_peer(record).ok());
    }

    TempDir dir;
    Store store;
    TestLoop loop;
    std::unique_ptr<posta::HttpClient> http;
    std::unique_ptr<PeerDirectory> peers;
    std::chrono::system_clock::time_point now = std::chrono::system_clock::time_point(std::chrono::hours(500'000));
};

struct Calls {
    int count = 0;
    std::optional<Result<Peer>> last;
    PeerDirectory::Callback callback()
    {
        return [this](Result<Peer> peer) {
            ++count;
            last.emplace(std::move(peer));
        };
    }
};

}

TEST_CASE("a valid identity document gives its peer, canonical and with its key")
{
    auto peer = parse_peer_document(document({ { "url", "HTTP://Peer.Example.:8080/" } }), peer_url, 1234);
    REQUIRE_MESSAGE(peer.ok(), peer.error().text());
    CHECK(peer->url == peer_url);
    CHECK(peer->name == "Peer");
    CHECK(peer->inbox == std::string(peer_url) + "/inbox");
    CHECK(peer->public_key[0] == 7);
    CHECK(peer->fetched_at_ms == 1234);
    // name is optional; unknown fields are ignored.
    CHECK(parse_peer_document(document({ { "name", nullptr }, { "extra", { 1, 2 } } }), peer_url, 0).ok());
}

TEST_CASE("an identity document of another URL is refused")
{
    Error error = parse_error(document({ { "url", "http://other.example:8080" } }));
    CHECK(error.detail.find("http://other.example:8080") != std::string::npos);
    parse_error(document({ { "url", "http://peer.example:8081" } }));
    parse_error(document({ { "url", "https://peer.example:8080" } }));
    parse_error(document({ { "url", "http://peer.example:8080/path" } }));
}

TEST_CASE("an identity document without a 32-byte base64url key is refused")
{
    parse_error(document({ { "public_key", nullptr } }));
    parse_error(document({ { "public_key", 5 } }));
    parse_error(document({ { "public_key", base64url_encode(std::array<unsigned char, 31> {}) } }));
    parse_error(document({ { "public_key", base64url_encode(std::array<unsigned char, 33> {}) } }));
    parse_error(document({ { "public_key", key_b64(7) + "=" } }));
    // Standard base64's alphabet, not base64url's.
    std::string standard = key_b64(0xfb);
    for (char& c : standard)
        c = c == '-' ? '+' : c == '_' ? '/' : c;
    REQUIRE(standard != key_b64(0xfb));
    parse_error(document({ { "public_key", standard } }));
}

TEST_CASE("an identity document of another shape or version is refused")
{
    parse_error("");
    parse_error("not json");
    parse_error("[1]");
    parse_error(document({ { "posta", 2 } }));
    parse_error(document({ { "posta", "1" } }));
    parse_error(document({ { "posta", nullptr } }));
    parse_error(document({ { "inbox", nullptr } }));
    parse_error(document({ { "inbox", "ftp://peer.example/inbox" } }));
    parse_error(document({ { "name", 3 } }));
    parse_error(std::string("{\"posta\":1,\"url\":\"") + std::string(peer_url) + "\",\"name\":\"\xff\"}");
}

TEST_CASE("an identity document whose inbox is not its url + /inbox is refused, naming both")
{
    for (std::string inbox : { std::string(peer_url) + "/elsewhere", std::string(peer_url) + "/inbox/",
             std::string("http://127.0.0.1:9/inbox"), std::string(peer_url) + "/inbox?x=1", std::string("") }) {
        auto parsed = parse_peer_document(document({ { "inbox", inbox } }), peer_url, 0);
        REQUIRE_FALSE(parsed);
        CHECK(peer_problem(parsed.error()) == PeerProblem::BadDocument);
        CHECK(parsed.error().detail.find("not its url + \"/inbox\"") != std::string::npos);
    }
    // A control character in the claimed inbox never reaches a log line as is.
    auto parsed = parse_peer_document(document({ { "inbox", "http://x/\n\x1b[31m" } }), peer_url, 0);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().detail.find_first_of("\n\x1b") == std::string::npos);
}

TEST_CASE("a cached peer is fresh for an hour after its fetch, then a miss")
{
    Fixture f;
    std::string url(peer_url);
    auto none = f.peers->cached(url);
    REQUIRE(none.ok());
    CHECK_FALSE(none.value().has_value());

    f.cache(url, f.now_ms() - 59 * 60 * 1000);
    auto hit = f.peers->cached(url);
    REQUIRE(hit.ok());
    REQUIRE(hit.value().has_value());
    CHECK(hit.value()->name == "Cached");
    CHECK(hit.value()->public_key[0] == 9);

    f.now += std::chrono::minutes(1);
    auto stale = f.peers->cached(url);
    REQUIRE(stale.ok());
    CHECK_FALSE(stale.value().has_value());
}

TEST_CASE("fetches of one URL in flight are joined, and an unreachable peer fails each waiter")
{
    Fixture f;
    RefusingPort port;
    Calls first, second;
    f.peers->fetch(port.url(), first.callback());
    f.peers->fetch(port.url(), second.callback());
    CHECK(f.peers->fetches_in_flight() == 1);
    CHECK(f.http->in_flight() == 1);
    CHECK(first.count == 0); // never from inside fetch()
    REQUIRE(f.loop.run_until([&] { return first.count && second.count; }));
    CHECK(first.count == 1);
    CHECK(second.count == 1);
    REQUIRE_FALSE(first.last->ok());
    CHECK(peer_problem(first.last->error()) == PeerProblem::Unreachable);
    CHECK(f.peers->fetches_in_flight() == 0);
    // Failures are not cached: the next fetch asks again.
    Calls third;
    f.peers->fetch(port.url(), third.callback());
    CHECK(f.http->in_flight() == 1);
    REQUIRE(f.loop.run_until([&] { return third.count == 1; }));
}

TEST_CASE("a forced refetch happens at most once per peer per five minutes")
{
    Fixture f;
    RefusingPort port;
    Calls calls;
    // Nothing cached: nothing to refresh, and the callback is never called.
    CHECK_FALSE(f.peers->refetch(port.url(), calls.callback()));

    f.cache(port.url(), f.now_ms() - 1000);
    CHECK(f.peers->refetch(port.url(), calls.callback()));
    REQUIRE(f.loop.run_until([&] { return calls.count == 1; }));
    CHECK(peer_problem(calls.last->error()) == PeerProblem::Unreachable);

    // The budget was spent when it started, whatever the outcome.
    f.now += std::chrono::minutes(4) + std::chrono::seconds(59);
    CHECK_FALSE(f.peers->refetch(port.url(), calls.callback()));
    f.now += std::chrono::seconds(1);
    CHECK(f.peers->refetch(port.url(), calls.callback()));
    REQUIRE(f.loop.run_until([&] { return calls.count == 2; }));
    CHECK_FALSE(f.peers->refetch(port.url(), calls.callback()));
}

TEST_CASE("a directory destroyed with fetches in flight calls none of their callbacks")
{
    Fixture f;
    RefusingPort port;
    Calls calls;
    f.peers->fetch(port.url(), calls.callback());
    f.peers.reset();
    // The Cancelled completion comes and finds the directory gone.
    REQUIRE(f.loop.run_until([&] { return f.http->in_flight() == 0; }));
    CHECK(calls.count == 0);
}
