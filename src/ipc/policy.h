// Policy: the daemon-wide rules every worker applies — the sender ACL
// (--acl) and the rate limit (--rate-per-minute) of its inbox, and the
// config keys SIGHUP applies (supervisor/reload_plan.h): the fronts whose
// X-Forwarded-For it believes, the head bound, the head and body timeouts,
// the connections one address may hold, the log level and format. The
// supervisor hands it to a worker in its start message and sends it again
// over the channel after each successful reload, so unchanged workers follow
// the new rules without a restart. A worker reads those keys from here,
// never from the config of its start message.
#pragma once

#include "config/acl.h"
#include "config/config.h"
#include "common/duration.h"
#include "common/log.h"
#include "config/outbound_policy.h"
#include "common/result.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace posta {

struct Policy {
    Acl acl;
    unsigned rate_per_minute = 120; // 0: no limit
    // The reloadable config keys, as Config has them.
    std::vector<AddressRange> trusted_proxies;
    size_t max_head_bytes = 16384;
    Duration head_timeout = std::chrono::seconds(10);
    Duration body_timeout = std::chrono::seconds(60);
    size_t max_connections_per_address = 64;
    log::Level log_level = log::Level::Info;
    log::Format log_format = log::Format::Text;

    // Copies the reloadable keys from `config`; the ACL and rate stay.
    void take_config(Config const& config);

    // A compact text form for the channel: one "KEY VALUE" line per field
    // (durations in milliseconds, the log enums as numbers), then one
    // "allow P" or "deny P" line per pattern (patterns hold no newline),
    // then one "trust RANGE" line per trusted proxy range. deserialize()
    // wants every scalar field exactly once.
    std::string serialize() const;
    static Result<Policy> deserialize(std::string_view);
};

}
