// Host keys and identity URLs (PROTOCOL.md, "Identity URL and host key").
// The supervisor routes by host key; workers compare URLs canonically. Both
// reduce a Host header and a manifest URL with the same functions here.
#pragma once

#include "common/result.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace posta {

// The host key of a Host header value: lowercased, trailing dot removed, port
// dropped. An IPv6 literal keeps its brackets: "[::1]:8080" -> "[::1]".
// The error says why a value is not a valid host[:port].
Result<std::string> host_key_from_header(std::string_view host);

struct IdentityUrl {
    std::string scheme;    // "http" or "https"
    std::string host;      // lowercased, trailing dot removed, brackets kept for IPv6
    uint16_t port = 0;     // the explicit port, or the scheme's default
    std::string host_key;  // == host
    std::string canonical; // scheme://host[:port], default port omitted, no trailing slash
};

// Parses an identity URL: http or https, an ASCII host, an optional port, no
// userinfo, no path but "/", no query or fragment. The error's detail says
// what is wrong and what would be accepted.
Result<IdentityUrl> parse_identity_url(std::string_view url);

}
