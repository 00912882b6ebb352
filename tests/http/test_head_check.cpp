// check_head: each refusal a head can earn before its body is read, and
// what a passing head gets (path, query, 100-continue).
#include "http/head_check.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

HeadRules const rules { "arne.test", 1024 };

Request head(std::string target = "/inbox?x", std::string host = "arne.test")
{
    Request r;
    r.method = "POST";
    r.target = std::move(target);
    if (!host.empty())
        r.headers.add("Host", std::move(host));
    return r;
}

int status_of(std::optional<Rejection> const& rejection) { return rejection ? rejection->status : 0; }

BodyFraming length(uint64_t n) { return BodyFraming { false, n }; }

}

TEST_CASE("a head for this host passes and gets its path and query")
{
    Request r = head();
    CHECK_FALSE(check_head(r, length(10), rules));
    CHECK(r.path == "/inbox");
    CHECK(r.query == "x");
}

TEST_CASE("a Host with a port and another case names the same identity")
{
    Request r = head("/", "ARNE.test:8080");
    CHECK_FALSE(check_head(r, {}, rules));
}

TEST_CASE("a head for another host is 421 and names both hosts")
{
    Request r = head("/", "marcus.test");
    auto rejection = check_head(r, {}, rules);
    REQUIRE(rejection);
    CHECK(rejection->status == 421);
    CHECK(rejection->code == "misdirected_request");
    CHECK(rejection->message.find("marcus.test") != std::string::npos);
}

TEST_CASE("an absolute target's authority replaces Host, both ways")
{
    Request elsewhere = head("http://marcus.test/inbox", "arne.test");
    CHECK(status_of(check_head(elsewhere, {}, rules)) == 421);
    Request here = head("http://arne.test/inbox", "marcus.test");
    CHECK_FALSE(check_head(here, {}, rules));
}

TEST_CASE("HTTP/1.1 needs exactly one Host; HTTP/1.0 may have none")
{
    Request none = head("/", "");
    CHECK(status_of(check_head(none, {}, rules)) == 400);
    Request two = head();
    two.headers.add("Host", "arne.test");
    CHECK(status_of(check_head(two, {}, rules)) == 400);
    Request old = head("/", "");
    old.http_minor = 0;
    CHECK_FALSE(check_head(old, {}, rules));
}

TEST_CASE("a Host that is not host[:port] is 400")
{
    Request r = head("/", "arne.test:port");
    CHECK(status_of(check_head(r, {}, rules)) == 400);
}

TEST_CASE("HTTP/2 and later are 505, a bad target 400")
{
    Request two = head();
    two.http_major = 2;
    CHECK(status_of(check_head(two, {}, rules)) == 505);
    Request bad = head("arne.test:443");
    CHECK(status_of(check_head(bad, {}, rules)) == 400);
}

TEST_CASE("a declared body over max_body_bytes is 413 before any of it is read")
{
    Request at_limit = head();
    CHECK_FALSE(check_head(at_limit, length(1024), rules));
    Request over = head();
    auto rejection = check_head(over, length(1025), rules);
    REQUIRE(rejection);
    CHECK(rejection->status == 413);
    CHECK(rejection->code == "body_too_large");
}

TEST_CASE("only Expect: 100-continue is accepted")
{
    Request odd = head();
    odd.headers.add("Expect", "something-else");
    CHECK(status_of(check_head(odd, length(10), rules)) == 417);
    Request ok = head();
    ok.headers.add("Expect", " 100-Continue ");
    CHECK_FALSE(check_head(ok, length(10), rules));
}

TEST_CASE("100 Continue is wanted only by HTTP/1.1 clients that will send a body")
{
    Request r = head();
    r.headers.add("Expect", "100-continue");
    CHECK(wants_continue(r, length(10)));
    CHECK(wants_continue(r, BodyFraming { true, std::nullopt }));
    CHECK_FALSE(wants_continue(r, length(0)));
    CHECK_FALSE(wants_continue(r, {}));
    r.http_minor = 0;
    CHECK_FALSE(wants_continue(r, length(10)));
    CHECK_FALSE(wants_continue(head(), length(10)));
}
