// split_request_target: the three forms we route and what we refuse.
#include "http/request_target.h"

#include <doctest/doctest.h>

using namespace posta;

TEST_CASE("an origin-form target splits into path and query")
{
    auto t = split_request_target("/api/messages?after=3&x=");
    REQUIRE(t);
    CHECK(t->path == "/api/messages");
    CHECK(t->query == "after=3&x=");
    CHECK_FALSE(t->authority);
}

TEST_CASE("an absolute-form target carries its authority, which replaces Host")
{
    auto t = split_request_target("HTTPS://arne.test:8080/inbox?a");
    REQUIRE(t);
    CHECK(t->authority == "arne.test:8080");
    CHECK(t->path == "/inbox");
    CHECK(t->query == "a");
}

TEST_CASE("an absolute-form target without a path has the path /")
{
    auto bare = split_request_target("http://arne.test");
    REQUIRE(bare);
    CHECK(bare->path == "/");
    auto query_only = split_request_target("http://arne.test?q");
    REQUIRE(query_only);
    CHECK(query_only->path == "/");
    CHECK(query_only->query == "q");
}

TEST_CASE("the asterisk form is the path *")
{
    auto t = split_request_target("*");
    REQUIRE(t);
    CHECK(t->path == "*");
}

TEST_CASE("authority-form, other schemes, empty authorities and relative paths are refused")
{
    CHECK_FALSE(split_request_target("arne.test:443"));
    CHECK_FALSE(split_request_target("ftp://arne.test/"));
    CHECK_FALSE(split_request_target("http:///path"));
    CHECK_FALSE(split_request_target("inbox"));
    CHECK_FALSE(split_request_target(""));
}
