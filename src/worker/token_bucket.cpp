// Token buckets in fixed point: see RateLimiter in token_bucket.h for the
// units, the refill rule and how memory is bounded.
#include "token_bucket.h"

#include <algorithm>

namespace posta {

namespace {

// Refilling an empty bucket takes this long at every rate.
constexpr std::chrono::seconds full_refill { 60 };

}

RateLimiter::RateLimiter(uint32_t per_minute, size_t max_keys)
    : m_rate(std::min(per_minute, max_rate))
    , m_max_keys(std::max<size_t>(max_keys, 1))
    , m_capacity(static_cast<Units>(m_rate) * units_per_token)
{
}

void RateLimiter::forget_stale(Clock::time_point now)
{
    while (!m_buckets.empty() && now - m_buckets.back().updated >= full_refill) {
        m_index.erase(m_buckets.back().key);
        m_buckets.pop_back();
    }
}

RateDecision RateLimiter::check(std::string_view key, Clock::time_point now)
{
    if (m_rate == 0)
        return {};
    forget_stale(now);

    auto found = m_index.find(key);
    if (found == m_index.end()) {
        if (m_index.size() >= m_max_keys) {
            m_index.erase(m_buckets.back().key);
            m_buckets.pop_back();
        }
        m_buckets.push_front(Bucket { std::string(key), m_capacity, now });
        m_index.emplace(m_buckets.front().key, m_buckets.begin());
    } else {
        m_buckets.splice(m_buckets.begin(), m_buckets, found->second);
    }
    Bucket& bucket = m_buckets.front();

    if (now > bucket.updated) {
        auto elapsed = now - bucket.updated;
        if (elapsed >= full_refill) {
            bucket.credit = m_capacity;
        } else {
            // elapsed < 60 s, so `gained` stays below 6e10 * max_rate = 6e18;
            // it is compared with the room left, never added past capacity.
            Units gained = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count() * m_rate;
            Units room = m_capacity - bucket.credit;
            bucket.credit = gained >= room ? m_capacity : bucket.credit + gained;
        }
        bucket.updated = now;
    }

    if (bucket.credit >= units_per_token) {
        bucket.credit -= units_per_token;
        return {};
    }
    Units missing = units_per_token - bucket.credit;
    int64_t wait_ns = (missing + m_rate - 1) / m_rate;
    int64_t wait_s = (wait_ns + 999'999'999) / 1'000'000'000;
    return RateDecision { false, static_cast<uint32_t>(std::max<int64_t>(wait_s, 1)) };
}

}
