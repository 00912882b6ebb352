// Sign-in and the CSRF check: which Origin values are the identity's own
// (default ports, case, https), which requests need one, a minted code that
// redeems once within 10 minutes, and the ApiServer's one authorization
// function with a real Store: Bearer without Origin, the cookie for reads,
// the cookie with and without the identity's Origin for writes, and ended
// or expired sessions.
#include "support/test_support.h"
#include "worker/api_server.h"
#include "worker/event_sink.h"
#include "worker/sign_in.h"
#include "worker/store.h"

#include <chrono>
#include <doctest/doctest.h>
#include <sodium.h>

using namespace posta;
using namespace posta::test;

namespace {

struct SodiumInit {
    SodiumInit() { REQUIRE(sodium_init() >= 0); }
};

int64_t wall_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Request request(char const* method, std::initializer_list<std::pair<char const*, std::string>> fields = {})
{
    Request out;
    out.method = method;
    out.target = out.path = "/api/messages";
    for (auto const& [name, value] : fields)
        out.headers.add(name, value);
    return out;
}

}

TEST_CASE("an Origin is the identity's when scheme, host and port match, however the default port and case are written")
{
    CHECK(is_origin_of("https://arne.example", "https://arne.example"));
    CHECK(is_origin_of("https://arne.example:443", "https://arne.example"));
    CHECK(is_origin_of("HTTPS://Arne.EXAMPLE", "https://arne.example"));
    CHECK(is_origin_of("http://arne.local:8080", "http://arne.local:8080"));
    CHECK(is_origin_of("http://arne.local:80", "http://arne.local"));
    CHECK(is_origin_of("http://[::1]:8080", "http://[::1]:8080"));

    CHECK(!is_origin_of("http://arne.example", "https://arne.example"));     // the scheme is part of it
    CHECK(!is_origin_of("https://arne.example:80", "https://arne.example"));  // 80 is not https' default
    CHECK(!is_origin_of("https://arne.example:8443", "https://arne.example"));
    CHECK(!is_origin_of("http://arne.local:8081", "http://arne.local:8080"));
    CHECK(!is_origin_of("http://arne.local", "http://arne.local:8080"));
    CHECK(!is_origin_of("https://evil.arne.example", "https://arne.example")); // a subdomain is another origin
    CHECK(!is_origin_of("https://arne.example.evil.test", "https://arne.example"));
    CHECK(!is_origin_of("https://arne.exampl", "https://arne.example"));
}

TEST_CASE("null, paths, user info, lists and garbage are never the identity's Origin")
{
    for (char const* origin : { "null", "", " ", "https://arne.example/", "https://arne.example/app",
             "https://arne.example?x", "https://arne.example#x", "https://u@arne.example", "arne.example",
             "//arne.example", "https://arne.example https://arne.example", "https://arne.example, https://evil.test",
             "https://arne.example:", "https://arne.example:0", "ftp://arne.example", "https://arne.example\t" }) {
        CAPTURE(origin);
        CHECK(!is_origin_of(origin, "https://arne.example"));
    }
}

TEST_CASE("only requests that change state need the Origin check")
{
    for (char const* method : { "POST", "PATCH", "DELETE", "PUT" })
        CHECK(changes_state(method));
    for (char const* method : { "GET", "HEAD", "OPTIONS" })
        CHECK(!changes_state(method));
}

TEST_CASE("the Origin check refuses a missing, foreign or repeated Origin with 403 cross_origin")
{
    std::string const own = "http://arne.local:8080";
    CHECK(!check_origin(request("POST", { { "Origin", own } }), own, OriginRule::Required));
    CHECK(!check_origin(request("POST", { { "Origin", own } }), own, OriginRule::IfPresent));
    CHECK(!check_origin(request("POST"), own, OriginRule::IfPresent));

    auto missing = check_origin(request("POST"), own, OriginRule::Required);
    REQUIRE(missing);
    CHECK(missing->status == 403);
    CHECK(missing->body.find("\"error\":\"cross_origin\"") != std::string::npos);
    CHECK(missing->body.find("no Origin") != std::string::npos);
    for (auto rule : { OriginRule::Required, OriginRule::IfPresent }) {
        auto foreign = check_origin(request("POST", { { "Origin", "http://evil.local:8080" } }), own, rule);
        REQUIRE(foreign);
        CHECK(foreign->status == 403);
        auto twice = check_origin(request("POST", { { "Origin", own }, { "Origin", own } }), own, rule);
        REQUIRE(twice);
        CHECK(twice->status == 403);
        CHECK(check_origin(request("POST", { { "Origin", "null" } }), own, rule));
    }
}

TEST_CASE("a minted sign-in code redeems once, within 10 minutes")
{
    SodiumInit sodium;
    TempDir tmp;
    auto store = Store::open(tmp.path());
    REQUIRE(store.ok());
    constexpr int64_t t0 = 1795770000000;
    auto code = mint_login_code(store.value(), t0);
    REQUIRE_MESSAGE(code.ok(), code.error().text());
    CHECK(code->size() == 43); // base64url of 32 bytes: fits a URL fragment as it is
    CHECK(code->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
    auto late = mint_login_code(store.value(), t0);
    REQUIRE(late.ok());
    CHECK(late.value() != code.value());

    NewSession session = make_session(t0 + login_code_lifetime_ms - 1);
    CHECK(session.record.expires_at_ms - session.record.created_at_ms == 30LL * 24 * 3600 * 1000);
    CHECK(store->redeem_login_code(hash_secret(*code), session.hash, session.record, t0 + login_code_lifetime_ms - 1).value());
    CHECK(!store->redeem_login_code(hash_secret(*code), session.hash, session.record, t0 + 1).value());
    NewSession other = make_session(t0 + login_code_lifetime_ms);
    CHECK(other.record.id != session.record.id);
    CHECK(other.secret != session.secret);
    CHECK(!store->redeem_login_code(hash_secret(*late), other.hash, other.record, t0 + login_code_lifetime_ms).value());
}

TEST_CASE("the session cookie names the secret, lasts 30 days, and is Secure only when the request came over TLS")
{
    SodiumInit sodium;
    NewSession session = make_session(0);
    Request plain = request("POST");
    Request tls = request("POST");
    tls.secure = true;
    CHECK(session_cookie(session, cookie_transport(plain))
        == "posta_session=" + session.secret + "; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000");
    CHECK(session_cookie(session, cookie_transport(tls))
        == "posta_session=" + session.secret + "; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000; Secure");
    CHECK(ended_session_cookie(cookie_transport(tls)) == "posta_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure");
}

TEST_CASE("the owner API admits a Bearer token without Origin, and a cookie for writes only from its own origin")
{
    SodiumInit sodium;
    TempDir tmp;
    auto opened = Store::open(tmp.path());
    REQUIRE(opened.ok());
    Store& store = opened.value();
    std::string const own = "http://arne.local:8080";
    EventSink sink(own, {});
    ApiServer api(store, sink, ApiServer::Settings { own });

    std::string token = make_api_token();
    REQUIRE(store.add_token(hash_api_token(token), wall_ms()).ok());
    NewSession session = make_session(wall_ms());
    REQUIRE(store.add_session(session.hash, session.record, wall_ms()).ok());
    std::string cookie = "theme=dark; posta_session=" + session.secret;

    auto status = [&](Request const& r) { auto refused = api.authorize(r); return refused ? refused->status : 0; };

    // Bearer: tools send no Origin, and need none.
    CHECK(status(request("POST", { { "Authorization", "Bearer " + token } })) == 0);
    CHECK(status(request("DELETE", { { "Authorization", "Bearer " + token }, { "Origin", "http://evil.local" } })) == 0);
    CHECK(status(request("POST", { { "Authorization", "Bearer nope" }, { "Cookie", cookie } })) == 401);
    // The cookie: reads from anywhere (SameSite keeps other sites' away) ...
    CHECK(status(request("GET", { { "Cookie", cookie } })) == 0);
    CHECK(status(request("HEAD", { { "Cookie", cookie } })) == 0);
    // ... writes only with the identity's Origin.
    for (char const* method : { "POST", "PATCH", "DELETE", "PUT" }) {
        CAPTURE(method);
        CHECK(status(request(method, { { "Cookie", cookie }, { "Origin", own } })) == 0);
        CHECK(status(request(method, { { "Cookie", cookie } })) == 403);
        CHECK(status(request(method, { { "Cookie", cookie }, { "Origin", "http://evil.local:8080" } })) == 403);
        CHECK(status(request(method, { { "Cookie", cookie }, { "Origin", "null" } })) == 403);
    }
    // No credentials at all, or only a stranger's cookie.
    auto none = api.authorize(request("GET"));
    REQUIRE(none);
    CHECK(none->status == 401);
    CHECK(none->headers.get("WWW-Authenticate").value_or("").starts_with("Bearer"));
    CHECK(!none->headers.get("Set-Cookie"));
    CHECK(status(request("GET", { { "Cookie", "posta_session=forged" } })) == 401);
    // A stale duplicate does not hide the live cookie.
    CHECK(status(request("GET", { { "Cookie", "posta_session=stale; posta_session=" + session.secret } })) == 0);

    // Ended: 401, and the browser is told to drop the cookie.
    REQUIRE(store.delete_session(session.record.id, wall_ms()).value());
    auto ended = api.authorize(request("GET", { { "Cookie", cookie } }));
    REQUIRE(ended);
    CHECK(ended->status == 401);
    CHECK(ended->headers.get("Set-Cookie").value_or("").starts_with("posta_session=; "));

    // Expired (it was made to end a second ago): 401.
    SessionRecord old { "old", wall_ms() - 31LL * 24 * 3600 * 1000, wall_ms() - 1000, std::nullopt };
    REQUIRE(store.add_session(hash_secret("old-secret"), old, old.created_at_ms).ok());
    CHECK(status(request("GET", { { "Cookie", "posta_session=old-secret" } })) == 401);
}
