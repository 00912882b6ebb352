// Every address is first put in one 16-byte form (IPv4 as ::ffff:a.b.c.d,
// the other IPv4-carrying IPv6 forms likewise), then looked up in the
// allow list and in k_special, a table of the ranges refused by default
// (IANA's special-purpose registries, RFC 6890 and its updates).
#include "outbound_policy.h"

#include "common/address.h"

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <netinet/in.h>

namespace posta {

namespace {

using Bytes = std::array<uint8_t, 16>;

struct Special {
    char const* range;
    std::string_view kind;
};

// First match wins, so a narrower range comes before one containing it.
constexpr Special k_special[] = {
    { "0.0.0.0/8", "unspecified" },
    { "10.0.0.0/8", "private" },
    { "100.64.0.0/10", "shared address space (CGNAT)" },
    { "127.0.0.0/8", "loopback" },
    { "169.254.0.0/16", "link-local" },
    { "172.16.0.0/12", "private" },
    { "192.0.0.0/24", "reserved" },
    { "192.0.2.0/24", "documentation" },
    { "192.168.0.0/16", "private" },
    { "198.18.0.0/15", "reserved" },
    { "198.51.100.0/24", "documentation" },
    { "203.0.113.0/24", "documentation" },
    { "224.0.0.0/4", "multicast" },
    { "255.255.255.255/32", "broadcast" },
    { "240.0.0.0/4", "reserved" },
    { "::/128", "unspecified" },
    { "::1/128", "loopback" },
    { "100::/64", "reserved" },
    { "2001:db8::/32", "documentation" },
    { "fc00::/7", "private" },
    { "fe80::/10", "link-local" },
    { "fec0::/10", "private" },
    { "ff00::/8", "multicast" },
};

Bytes mapped(uint8_t const (&v4)[4])
{
    Bytes out {};
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out.data() + 12, v4, 4);
    return out;
}

bool starts_with(Bytes const& bytes, std::initializer_list<uint8_t> prefix)
{
    return std::equal(prefix.begin(), prefix.end(), bytes.begin());
}

// The IPv4 address an IPv6 one carries, in mapped form, or the address as
// it is. `how` names the form for messages.
Bytes normalise(Bytes const& v6, char const** how)
{
    uint8_t v4[4];
    std::memcpy(v4, v6.data() + 12, 4);
    bool low_zero = v4[0] == 0 && v4[1] == 0 && v4[2] == 0 && v4[3] <= 1; // ::, ::1
    if (starts_with(v6, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff }))
        *how = "an IPv4-mapped address";
    else if (starts_with(v6, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }) && !low_zero)
        *how = "an IPv4-compatible address";
    else if (starts_with(v6, { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 }))
        *how = "a NAT64 address";
    else
        return v6;
    return mapped(v4);
}

// The address in its one form; nullopt when it is not IPv4 or IPv6.
std::optional<Bytes> address_bytes(sockaddr const* address, socklen_t length, char const** how)
{
    *how = nullptr;
    if (address && address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
        uint8_t v4[4];
        std::memcpy(v4, &reinterpret_cast<sockaddr_in const*>(address)->sin_addr, 4);
        return mapped(v4);
    }
    if (address && address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
        Bytes v6;
        std::memcpy(v6.data(), &reinterpret_cast<sockaddr_in6 const*>(address)->sin6_addr, 16);
        return normalise(v6, how);
    }
    return std::nullopt;
}

std::optional<std::string_view> special_kind(Bytes const& bytes)
{
    // Parsed once: the table is literals known to be good.
    static std::vector<std::pair<AddressRange, std::string_view>> const table = [] {
        std::vector<std::pair<AddressRange, std::string_view>> out;
        for (Special const& special : k_special)
            out.emplace_back(parse_address_range(special.range).value(), special.kind);
        return out;
    }();
    for (auto const& [range, kind] : table) {
        if (range.contains(bytes))
            return kind;
    }
    return std::nullopt;
}

}

bool AddressRange::contains(Bytes const& address) const
{
    unsigned whole = prefix / 8;
    if (std::memcmp(address.data(), network.data(), whole) != 0)
        return false;
    unsigned rest = prefix % 8;
    if (rest == 0)
        return true;
    auto mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (address[whole] & mask) == network[whole];
}

bool AddressRange::contains(sockaddr const* address, socklen_t length) const
{
    // Not normalise(): an IPv4-mapped address is the mapped form already,
    // and the other IPv4-carrying forms are other peers.
    if (address && address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
        uint8_t v4[4];
        std::memcpy(v4, &reinterpret_cast<sockaddr_in const*>(address)->sin_addr, 4);
        return contains(mapped(v4));
    }
    if (address && address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
        Bytes v6;
        std::memcpy(v6.data(), &reinterpret_cast<sockaddr_in6 const*>(address)->sin6_addr, 16);
        return contains(v6);
    }
    return false;
}

bool any_range_contains(std::vector<AddressRange> const& ranges, sockaddr const* address, socklen_t length)
{
    return std::any_of(ranges.begin(), ranges.end(), [&](AddressRange const& range) {
        return range.contains(address, length);
    });
}

Result<AddressRange> parse_address_range(std::string_view text)
{
    auto fail = [&](std::string why) {
        return Error::message("address range", std::move(why), "\"" + std::string(text) + "\"");
    };
    std::string_view literal = text;
    std::optional<unsigned> prefix;
    if (size_t slash = text.find('/'); slash != std::string_view::npos) {
        literal = text.substr(0, slash);
        std::string_view digits = text.substr(slash + 1);
        unsigned n = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
            return fail("has a bad prefix length; write a network as 127.0.0.0/8 or ::1/128");
        prefix = n;
    }

    AddressRange out;
    out.text = std::string(text);
    std::string address(literal);
    in_addr v4 {};
    in6_addr v6 {};
    if (inet_pton(AF_INET, address.c_str(), &v4) == 1) {
        if (prefix.value_or(32) > 32)
            return fail("has a prefix longer than 32 bits for an IPv4 address");
        uint8_t bytes[4];
        std::memcpy(bytes, &v4, 4);
        out.network = mapped(bytes);
        out.prefix = 96 + prefix.value_or(32);
    } else if (inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
        if (prefix.value_or(128) > 128)
            return fail("has a prefix longer than 128 bits for an IPv6 address");
        std::memcpy(out.network.data(), &v6, 16);
        out.prefix = prefix.value_or(128);
    } else {
        return fail("is not an IPv4 or IPv6 network; write it as 127.0.0.0/8 or ::1/128 (no names, no brackets)");
    }

    Bytes masked = out.network;
    for (unsigned bit = out.prefix; bit < 128; ++bit)
        masked[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    if (masked != out.network)
        return fail("has address bits set past its prefix length; write the network's first address");
    return out;
}

std::optional<std::string_view> special_address_kind(sockaddr const* address, socklen_t length)
{
    char const* how = nullptr;
    auto bytes = address_bytes(address, length, &how);
    if (!bytes)
        return std::nullopt;
    return special_kind(*bytes);
}

std::optional<std::string> OutboundPolicy::refusal(sockaddr const* address, socklen_t length) const
{
    char const* how = nullptr;
    auto bytes = address_bytes(address, length, &how);
    if (!bytes)
        return std::string("refused by outbound policy: not an IPv4 or IPv6 address");
    for (AddressRange const& range : m_allow) {
        if (range.contains(*bytes))
            return std::nullopt;
    }
    auto kind = special_kind(*bytes);
    if (!kind)
        return std::nullopt;
    std::string words = "refused by outbound policy: " + format_host(address, length) + " is " + std::string(*kind);
    if (how)
        words += " (" + std::string(how) + ")";
    return words + "; see outbound_allow";
}

}
