// OutboundPolicy: which addresses a worker may connect to. Every connection
// a worker opens (a sender's or a recipient's identity document, a
// delivery) is checked against it after name resolution, just before its
// socket is opened (HttpClient's connect hook), so neither a name that
// resolves elsewhere at each lookup nor a second address of one name slips
// past it. By default it refuses the addresses that lead into the
// operator's own machine or network; `outbound_allow` (posta-server(8))
// opens ranges of them. Pure data: it owns its allow list, nothing else.
#pragma once

#include "common/result.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <vector>

namespace posta {

// An IPv4 or IPv6 network as operators write it ("127.0.0.0/8", "::1/128",
// or one address without a prefix). IPv4 is held in its IPv4-mapped IPv6
// form, its prefix counted over all 128 bits.
struct AddressRange {
    std::array<uint8_t, 16> network {};
    unsigned prefix = 0; // 0..128
    std::string text;    // as written, for messages

    bool contains(std::array<uint8_t, 16> const& address) const;
    // The same for a socket address; false for one that is not IPv4 or
    // IPv6. An IPv4-mapped IPv6 address is its IPv4 address; no other
    // IPv4-carrying form is converted (a range names the peer as it is).
    bool contains(sockaddr const* address, socklen_t length) const;

    // The same network; how it was written does not count.
    bool operator==(AddressRange const& other) const { return network == other.network && prefix == other.prefix; }
};

// Whether any of `ranges` contains `address` (trusted_proxies).
bool any_range_contains(std::vector<AddressRange> const& ranges, sockaddr const* address, socklen_t length);

// Parses "ADDRESS/PREFIX" or "ADDRESS"; bits set past the prefix are an
// error (a typo more often than not). The detail says what would do.
Result<AddressRange> parse_address_range(std::string_view text);

// Why the default policy refuses `address` ("loopback", "private",
// "link-local", ...), nullopt for an address it lets through. IPv4-mapped
// (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d)
// forms are judged as the IPv4 address they carry.
std::optional<std::string_view> special_address_kind(sockaddr const* address, socklen_t length);

class OutboundPolicy {
public:
    explicit OutboundPolicy(std::vector<AddressRange> allow = {})
        : m_allow(std::move(allow))
    {
    }

    // nullopt when a connection to `address` may be opened; otherwise the
    // words for the owner's last_error and the operator's log, as in
    // "refused by outbound policy: 127.0.0.1 is loopback; see outbound_allow".
    // An address that is not IPv4 or IPv6 is refused.
    std::optional<std::string> refusal(sockaddr const* address, socklen_t length) const;

private:
    std::vector<AddressRange> m_allow;
};

}
