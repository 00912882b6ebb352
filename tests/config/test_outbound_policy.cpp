// The outbound policy as pure data: address literals are parsed into socket
// addresses and judged; nothing here connects to any of them.
#include "common/address.h"
#include "config/outbound_policy.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>

using namespace posta;

namespace {

// "127.0.0.1" or "::1" as a socket address with port 443.
SocketAddress address(std::string const& literal)
{
    auto parsed = parse_socket_address(literal.find(':') == std::string::npos ? literal + ":443" : "[" + literal + "]:443");
    REQUIRE(parsed);
    return parsed.value();
}

std::string kind(std::string const& literal)
{
    SocketAddress a = address(literal);
    auto found = special_address_kind(a.get(), a.length);
    return found ? std::string(*found) : "public";
}

std::optional<std::string> refusal(OutboundPolicy const& policy, std::string const& literal)
{
    SocketAddress a = address(literal);
    return policy.refusal(a.get(), a.length);
}

std::vector<AddressRange> ranges(std::initializer_list<char const*> texts)
{
    std::vector<AddressRange> out;
    for (char const* text : texts) {
        auto range = parse_address_range(text);
        REQUIRE(range);
        out.push_back(range.value());
    }
    return out;
}

}

TEST_CASE("the default policy names loopback, private, link-local, CGNAT, multicast and the other special IPv4 ranges")
{
    CHECK(kind("127.0.0.1") == "loopback");
    CHECK(kind("127.255.255.254") == "loopback");
    CHECK(kind("10.1.2.3") == "private");
    CHECK(kind("172.16.0.1") == "private");
    CHECK(kind("172.31.255.255") == "private");
    CHECK(kind("192.168.1.1") == "private");
    CHECK(kind("169.254.169.254") == "link-local");
    CHECK(kind("100.64.0.1") == "shared address space (CGNAT)");
    CHECK(kind("100.127.255.255") == "shared address space (CGNAT)");
    CHECK(kind("224.0.0.1") == "multicast");
    CHECK(kind("239.255.255.250") == "multicast");
    CHECK(kind("0.0.0.0") == "unspecified");
    CHECK(kind("255.255.255.255") == "broadcast");
    CHECK(kind("240.0.0.1") == "reserved");
    CHECK(kind("192.0.0.8") == "reserved");
    CHECK(kind("198.18.0.1") == "reserved");
    CHECK(kind("192.0.2.1") == "documentation");
}

TEST_CASE("addresses next to the special IPv4 ranges are public")
{
    CHECK(kind("172.15.255.255") == "public");
    CHECK(kind("172.32.0.0") == "public");
    CHECK(kind("100.63.255.255") == "public");
    CHECK(kind("100.128.0.0") == "public");
    CHECK(kind("11.0.0.1") == "public");
    CHECK(kind("126.255.255.255") == "public");
    CHECK(kind("128.0.0.1") == "public");
    CHECK(kind("169.253.255.255") == "public");
    CHECK(kind("223.255.255.255") == "public");
    CHECK(kind("1.1.1.1") == "public");
}

TEST_CASE("the default policy names the special IPv6 ranges")
{
    CHECK(kind("::1") == "loopback");
    CHECK(kind("::") == "unspecified");
    CHECK(kind("fc00::1") == "private");
    CHECK(kind("fd12:3456::1") == "private");
    CHECK(kind("fe80::1") == "link-local");
    CHECK(kind("febf::1") == "link-local");
    CHECK(kind("fec0::1") == "private");
    CHECK(kind("ff02::1") == "multicast");
    CHECK(kind("2001:db8::1") == "documentation");
    CHECK(kind("100::1") == "reserved");
    CHECK(kind("2a00:1450::1") == "public");
    CHECK(kind("fb00::1") == "public");
}

TEST_CASE("IPv4-mapped, IPv4-compatible and NAT64 IPv6 forms are judged as the IPv4 address they carry")
{
    CHECK(kind("::ffff:127.0.0.1") == "loopback");
    CHECK(kind("::ffff:10.0.0.1") == "private");
    CHECK(kind("::ffff:169.254.169.254") == "link-local");
    CHECK(kind("::127.0.0.1") == "loopback");
    CHECK(kind("::10.0.0.1") == "private");
    CHECK(kind("64:ff9b::a9fe:a9fe") == "link-local");
    CHECK(kind("::ffff:1.1.1.1") == "public");

    OutboundPolicy policy;
    auto words = refusal(policy, "::ffff:127.0.0.1");
    REQUIRE(words);
    CHECK(*words == "refused by outbound policy: ::ffff:127.0.0.1 is loopback (an IPv4-mapped address); see outbound_allow");
}

TEST_CASE("a refusal says which address, why, and where to open it")
{
    OutboundPolicy policy;
    auto words = refusal(policy, "127.0.0.1");
    REQUIRE(words);
    CHECK(*words == "refused by outbound policy: 127.0.0.1 is loopback; see outbound_allow");
    CHECK_FALSE(refusal(policy, "1.1.1.1"));
    CHECK_FALSE(refusal(policy, "2a00:1450::1"));
}

TEST_CASE("outbound_allow opens exactly its ranges, in any of an address's forms")
{
    OutboundPolicy policy(ranges({ "127.0.0.0/8", "::1/128", "10.1.0.0/16" }));
    CHECK_FALSE(refusal(policy, "127.0.0.1"));
    CHECK_FALSE(refusal(policy, "127.9.9.9"));
    CHECK_FALSE(refusal(policy, "::ffff:127.0.0.1"));
    CHECK_FALSE(refusal(policy, "::1"));
    CHECK_FALSE(refusal(policy, "10.1.255.1"));
    CHECK(refusal(policy, "10.2.0.1"));
    CHECK(refusal(policy, "169.254.169.254"));
    CHECK(refusal(policy, "fe80::1"));
}

TEST_CASE("address ranges parse with or without a prefix and refuse what is not a network")
{
    auto one = parse_address_range("192.0.2.7");
    REQUIRE(one);
    CHECK(one->prefix == 128);
    auto v6 = parse_address_range("fd00::/8");
    REQUIRE(v6);
    CHECK(v6->prefix == 8);
    auto all = parse_address_range("0.0.0.0/0");
    REQUIRE(all);
    CHECK(all->prefix == 96);

    CHECK(parse_address_range("127.0.0.1/8").error().detail.find("first address") != std::string::npos);
    CHECK(parse_address_range("10.0.0.0/33").error().detail.find("longer than 32") != std::string::npos);
    CHECK(parse_address_range("::/129").error().detail.find("longer than 128") != std::string::npos);
    CHECK(parse_address_range("10.0.0.0/").error().detail.find("prefix length") != std::string::npos);
    CHECK(parse_address_range("10.0.0.0/x").error().detail.find("prefix length") != std::string::npos);
    CHECK(parse_address_range("localhost").error().detail.find("not an IPv4 or IPv6") != std::string::npos);
    CHECK(parse_address_range("[::1]").error().detail.find("no brackets") != std::string::npos);
}

TEST_CASE("a range contains a socket address of its family, an IPv4-mapped one as its IPv4 address")
{
    auto trusted = ranges({ "127.0.0.1/32", "fd00::/8" });
    auto in = [&](std::string const& literal) {
        SocketAddress a = address(literal);
        return any_range_contains(trusted, a.get(), a.length);
    };
    CHECK(in("127.0.0.1"));
    CHECK(in("::ffff:127.0.0.1"));
    CHECK(in("fd12::1"));
    CHECK_FALSE(in("127.0.0.2"));
    CHECK_FALSE(in("::1"));
    CHECK_FALSE(in("::127.0.0.1"));        // IPv4-compatible: another peer
    CHECK_FALSE(in("64:ff9b::127.0.0.1")); // NAT64: another peer
    CHECK_FALSE(any_range_contains({}, address("127.0.0.1").get(), address("127.0.0.1").length));
}
