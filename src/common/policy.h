// Policy: the daemon-wide rules every worker applies — the sender ACL
// (--acl) and the rate limit (--rate-per-minute) of its inbox, and the
// fronts whose X-Forwarded-For it believes (trusted_proxies). The supervisor
// hands it to a worker in its start message and sends it again over the
// channel after each successful reload, so unchanged workers follow the new
// rules without a restart.
#pragma once

#include "common/acl.h"
#include "common/outbound_policy.h"
#include "common/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace posta {

struct Policy {
    Acl acl;
    unsigned rate_per_minute = 120; // 0: no limit
    std::vector<AddressRange> trusted_proxies;

    // A compact text form for the channel: one "rate N" line, then one
    // "allow P" or "deny P" line per pattern (patterns hold no newline),
    // then one "trust RANGE" line per trusted proxy range.
    std::string serialize() const;
    static Result<Policy> deserialize(std::string_view);
};

}
