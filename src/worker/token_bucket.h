// RateLimiter: the --rate-per-minute token buckets of a worker's inbox
// (PROTOCOL.md, "Daemon-wide policies"), one bucket per key: a sender URL or
// a client address. Use one RateLimiter per key space, so that floods of
// addresses cannot evict sender buckets and the other way round. Pure: the
// caller passes the (steady) time; single-threaded like the worker's loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace posta {

struct RateDecision {
    bool allowed = true;
    // When refused: whole seconds until one token is back (rounded up,
    // at least 1), for Retry-After. 0 when allowed.
    uint32_t retry_after_seconds = 0;
};

// A bucket holds at most N tokens, starts full and refills continuously at
// N per minute; each allowed request takes one, a refused one takes none.
// So a sender may burst N at once, then keep to N per minute.
//
// Memory is bounded two ways. A bucket that was last touched a minute or
// more ago is full again (refilling from empty takes exactly 60 s at every
// rate), which is the same as a key never seen, so check() forgets such keys
// as it goes: the keys are kept in order of last use and the stale ones are
// at the end, so this costs O(1) per call, amortized. And at most `max_keys`
// are kept: a new key beyond that evicts the least recently used one, which
// only gives that key a fresh (full) bucket early. Under a flood of more
// distinct keys per minute than `max_keys` the limit thus weakens for the
// oldest keys rather than memory growing or new senders being refused.
class RateLimiter {
public:
    using Clock = std::chrono::steady_clock;

    // Above this a limit is meaningless for a single worker; higher rates are
    // clamped to it (it keeps the fixed-point arithmetic in 64 bits).
    static constexpr uint32_t max_rate = 100'000'000;
    static constexpr size_t default_max_keys = 65'536;

    // `per_minute` 0 means no limit: every check is allowed and nothing is kept.
    explicit RateLimiter(uint32_t per_minute, size_t max_keys = default_max_keys);

    // Takes a token from `key`'s bucket if it has one. `now` should not go
    // backwards; if it does, no time is taken to have passed.
    RateDecision check(std::string_view key, Clock::time_point now);

    uint32_t per_minute() const { return m_rate; }
    // The number of keys currently remembered.
    size_t size() const { return m_index.size(); }

private:
    // Tokens are counted in units of 1/(60 s in ns) token, so a bucket gains
    // exactly `m_rate` units per nanosecond and no rounding ever drifts.
    using Units = int64_t;
    static constexpr Units units_per_token = 60'000'000'000;

    struct Bucket {
        std::string key;
        Units credit = 0; // in units, at most m_capacity
        Clock::time_point updated;
    };

    void forget_stale(Clock::time_point now);

    uint32_t m_rate;
    size_t m_max_keys;
    Units m_capacity;
    std::list<Bucket> m_buckets; // most recently used first
    // Views into the keys of m_buckets (list nodes never move).
    std::unordered_map<std::string_view, std::list<Bucket>::iterator> m_index;
};

}
