// The daemon-wide sender ACL (--acl FILE, PROTOCOL.md "Daemon-wide policies").
// Parsed by the supervisor (validated at start and on SIGHUP) and applied by
// every worker's inbox to the claimed `from` URL of a delivery.
#pragma once

#include "config/diagnostic.h"

#include <string>
#include <string_view>
#include <vector>

namespace posta {

struct Acl {
    // Each pattern is either a canonical identity URL, or "*." + domain,
    // which matches that host and every subdomain of it (any scheme/port).
    std::vector<std::string> allow;
    std::vector<std::string> deny;

    // Deny wins; a non-empty allow list admits only what it matches.
    bool admits(std::string_view sender_url) const;
};

// `allow = [...]`, `deny = [...]`, both optional; any other key is an error.
Parsed<Acl> parse_acl(std::string_view text, std::string const& file);

// Reads and parses `path`; an empty path gives the empty ACL (admit all).
Parsed<Acl> load_acl(std::string const& path);

}
