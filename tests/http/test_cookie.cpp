// Cookie fields as browsers and tools send them: several cookies in one
// field, spaces, quoted values, duplicates, several fields, and garbage that
// must not be taken for a cookie; and the Set-Cookie the worker writes.
#include "http/cookie.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

Headers cookies(std::initializer_list<char const*> fields)
{
    Headers headers;
    headers.add("Host", "arne.local");
    for (char const* field : fields)
        headers.add("Cookie", field);
    return headers;
}

using Values = std::vector<std::string_view>;

}

TEST_CASE("a cookie is found among several in one field, whatever its place")
{
    auto headers = cookies({ "a=1; posta_session=s3cret; b=2" });
    CHECK(cookie_values(headers, "posta_session") == Values { "s3cret" });
    CHECK(cookie_values(headers, "a") == Values { "1" });
    CHECK(cookie_values(headers, "b") == Values { "2" });
    CHECK(cookie_values(cookies({ "posta_session=x" }), "posta_session") == Values { "x" });
}

TEST_CASE("spaces and tabs around names and values are dropped, and a field with none between pairs is read")
{
    CHECK(cookie_values(cookies({ "a=1;posta_session=x;b=2" }), "posta_session") == Values { "x" });
    CHECK(cookie_values(cookies({ "  posta_session = x \t; b=2" }), "posta_session") == Values { "x" });
    CHECK(cookie_values(cookies({ "a=1;\tposta_session=x  " }), "posta_session") == Values { "x" });
}

TEST_CASE("a value in double quotes is taken without them; an unbalanced quote stays")
{
    CHECK(cookie_values(cookies({ "posta_session=\"abc\"" }), "posta_session") == Values { "abc" });
    CHECK(cookie_values(cookies({ "posta_session=\"\"" }), "posta_session") == Values { "" });
    CHECK(cookie_values(cookies({ "posta_session=\"abc" }), "posta_session") == Values { "\"abc" });
    CHECK(cookie_values(cookies({ "posta_session=\"" }), "posta_session") == Values { "\"" });
}

TEST_CASE("every value of a repeated cookie is given, in order, across one field and several")
{
    CHECK(cookie_values(cookies({ "posta_session=new; posta_session=old" }), "posta_session")
        == Values { "new", "old" });
    CHECK(cookie_values(cookies({ "posta_session=one", "x=1; posta_session=two" }), "posta_session")
        == Values { "one", "two" });
}

TEST_CASE("names compare exactly: case, prefixes and longer names are other cookies")
{
    auto headers = cookies({ "POSTA_SESSION=a; posta_session_old=b; xposta_session=c; posta_sessio=d" });
    CHECK(cookie_values(headers, "posta_session").empty());
}

TEST_CASE("garbage is skipped, not taken for a cookie")
{
    // No '=', an empty name, empty pairs, a lone ';', nothing at all.
    auto headers = cookies({ "posta_session; =posta_session; ;; ; =; posta_session" });
    CHECK(cookie_values(headers, "posta_session").empty());
    CHECK(cookie_values(cookies({ "" }), "posta_session").empty());
    CHECK(cookie_values(cookies({ ";" }), "posta_session").empty());
    // An '=' in the value belongs to the value; an empty value is a value.
    CHECK(cookie_values(cookies({ "posta_session=a=b" }), "posta_session") == Values { "a=b" });
    CHECK(cookie_values(cookies({ "posta_session=" }), "posta_session") == Values { "" });
    // Garbage around a good pair leaves it readable.
    CHECK(cookie_values(cookies({ "\x01junk; posta_session=ok; ===" }), "posta_session") == Values { "ok" });
}

TEST_CASE("only Cookie fields are read, whatever the case of their name")
{
    Headers headers;
    headers.add("Set-Cookie", "posta_session=not-this");
    headers.add("X-Cookie", "posta_session=nor-this");
    headers.add("cookie", "posta_session=this");
    CHECK(cookie_values(headers, "posta_session") == Values { "this" });
    CHECK(cookie_values(Headers {}, "posta_session").empty());
}

TEST_CASE("the worker's cookie is HttpOnly, SameSite=Strict, for the whole origin, and Secure only over TLS")
{
    CHECK(strict_cookie("posta_session", "abc", 2592000, CookieTransport::Any)
        == "posta_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000");
    CHECK(strict_cookie("posta_session", "abc", 60, CookieTransport::TlsOnly)
        == "posta_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure");
    CHECK(strict_cookie("posta_session", "", 0, CookieTransport::Any)
        == "posta_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
}
