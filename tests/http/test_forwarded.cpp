// ClientOrigin: X-Forwarded-For believed only from trusted proxies and read
// from the right past trusted hops; X-Forwarded-Proto from them. Addresses
// here are data: nothing connects to them.
#include "http/forwarded.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

std::vector<AddressRange> const& trusted()
{
    static std::vector<AddressRange> const ranges = { parse_address_range("127.0.0.1/32").value(),
        parse_address_range("::1").value() };
    return ranges;
}

Headers with(std::initializer_list<std::pair<char const*, char const*>> fields)
{
    Headers out;
    for (auto const& [name, value] : fields)
        out.add(name, value);
    return out;
}

}

TEST_CASE("from a trusted proxy the rightmost untrusted hop is the client")
{
    auto origin = client_origin("127.0.0.1", with({ { "X-Forwarded-For", "127.0.0.9, 127.0.0.21, 127.0.0.1" } }), trusted());
    CHECK(origin.via_trusted_proxy);
    CHECK(origin.forwarded_host == "127.0.0.21");
}

TEST_CASE("several X-Forwarded-For fields are one list, read from the last")
{
    auto origin = client_origin("127.0.0.1",
        with({ { "X-Forwarded-For", "127.0.0.9" }, { "x-forwarded-for", "127.0.0.22 , ::1" } }), trusted());
    CHECK(origin.forwarded_host == "127.0.0.22");
}

TEST_CASE("hops with ports and bracketed IPv6 hops are read")
{
    CHECK(client_origin("::1", with({ { "X-Forwarded-For", "127.0.0.23:5555" } }), trusted()).forwarded_host
        == "127.0.0.23");
    CHECK(client_origin("::1", with({ { "X-Forwarded-For", "[fe80::2]:80" } }), trusted()).forwarded_host == "fe80::2");
    CHECK(client_origin("::1", with({ { "X-Forwarded-For", "FE80:0::2" } }), trusted()).forwarded_host == "fe80::2");
}

TEST_CASE("a hop that is no address ends the walk at the trusted hop right of it")
{
    auto origin = client_origin("127.0.0.1", with({ { "X-Forwarded-For", "127.0.0.24, unknown, ::1" } }), trusted());
    CHECK(origin.forwarded_host == "::1");
    origin = client_origin("127.0.0.1", with({ { "X-Forwarded-For", "_hidden" } }), trusted());
    CHECK(origin.forwarded_host == "127.0.0.1");
}

TEST_CASE("a chain of trusted hops only gives its leftmost")
{
    CHECK(client_origin("127.0.0.1", with({ { "X-Forwarded-For", "::1, 127.0.0.1" } }), trusted()).forwarded_host
        == "::1");
}

TEST_CASE("from an untrusted peer X-Forwarded-For and X-Forwarded-Proto are ignored")
{
    auto origin = client_origin("127.0.0.2", with({ { "X-Forwarded-For", "127.0.0.21" }, { "X-Forwarded-Proto", "https" } }),
        trusted());
    CHECK_FALSE(origin.via_trusted_proxy);
    CHECK_FALSE(origin.secure_at_front);
    CHECK(origin.forwarded_host.empty());
    CHECK(client_origin("127.0.0.1", with({ { "X-Forwarded-For", "127.0.0.21" } }), {}).forwarded_host.empty());
}

TEST_CASE("a trusted proxy took TLS unless X-Forwarded-Proto says http first")
{
    CHECK(client_origin("127.0.0.1", {}, trusted()).secure_at_front);
    CHECK(client_origin("127.0.0.1", with({ { "X-Forwarded-Proto", "https" } }), trusted()).secure_at_front);
    CHECK_FALSE(client_origin("127.0.0.1", with({ { "X-Forwarded-Proto", " HTTP " } }), trusted()).secure_at_front);
    CHECK_FALSE(client_origin("127.0.0.1", with({ { "X-Forwarded-Proto", "http, https" } }), trusted()).secure_at_front);
    CHECK(client_origin("127.0.0.1", {}, trusted()).forwarded_host.empty());
}
