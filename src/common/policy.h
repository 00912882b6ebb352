// Policy: the daemon-wide rules every worker's inbox applies — the sender
// ACL (--acl) and the rate limit (--rate-per-minute). The supervisor hands
// it to a worker at fork and sends it again over the channel after each
// successful reload, so unchanged workers follow the new rules without a
// restart.
#pragma once

#include "common/acl.h"
#include "common/result.h"

#include <string>
#include <string_view>

namespace posta {

struct Policy {
    Acl acl;
    unsigned rate_per_minute = 120; // 0: no limit

    // A compact text form for the channel: one "rate N" line, then one
    // "allow P" or "deny P" line per pattern (patterns hold no newline).
    std::string serialize() const;
    static Result<Policy> deserialize(std::string_view);
};

}
