#include "worker/token_bucket.h"

#include <doctest/doctest.h>

using namespace posta;
using namespace std::chrono_literals;

namespace {

RateLimiter::Clock::time_point const t0 {};

// Takes `count` tokens from `key` at `now`; true when every one was allowed.
bool take(RateLimiter& limiter, std::string_view key, int count, RateLimiter::Clock::time_point now)
{
    for (int i = 0; i < count; ++i) {
        if (!limiter.check(key, now).allowed)
            return false;
    }
    return true;
}

}

TEST_CASE("a new key may burst up to the rate at once and is then refused")
{
    RateLimiter limiter(5);
    CHECK(take(limiter, "http://arne.local", 5, t0));
    auto decision = limiter.check("http://arne.local", t0);
    CHECK_FALSE(decision.allowed);
    CHECK(decision.retry_after_seconds >= 1);
}

TEST_CASE("an allowed check has no retry-after")
{
    RateLimiter limiter(5);
    auto decision = limiter.check("a", t0);
    CHECK(decision.allowed);
    CHECK(decision.retry_after_seconds == 0);
}

TEST_CASE("retry-after is the time until one token is back")
{
    RateLimiter per_second(60);
    REQUIRE(take(per_second, "a", 60, t0));
    CHECK(per_second.check("a", t0).retry_after_seconds == 1);

    RateLimiter per_minute(1);
    REQUIRE(take(per_minute, "a", 1, t0));
    CHECK(per_minute.check("a", t0).retry_after_seconds == 60);
    CHECK(per_minute.check("a", t0 + 15s).retry_after_seconds == 45);
}

TEST_CASE("retry-after rounds up to whole seconds and is at least one")
{
    RateLimiter limiter(7); // a token every 60/7 = 8.57 s
    REQUIRE(take(limiter, "a", 7, t0));
    CHECK(limiter.check("a", t0).retry_after_seconds == 9);
    CHECK(limiter.check("a", t0 + 8s).retry_after_seconds == 1);
    CHECK(limiter.check("a", t0 + 8500ms).retry_after_seconds == 1);

    RateLimiter fast(6000); // a token every 10 ms
    REQUIRE(take(fast, "a", 6000, t0));
    CHECK(fast.check("a", t0).retry_after_seconds == 1);
}

TEST_CASE("tokens come back at the rate per minute")
{
    RateLimiter limiter(60);
    REQUIRE(take(limiter, "a", 60, t0));
    CHECK_FALSE(limiter.check("a", t0 + 999ms).allowed);
    CHECK(limiter.check("a", t0 + 1s).allowed);
    CHECK_FALSE(limiter.check("a", t0 + 1s).allowed);
    CHECK(take(limiter, "a", 10, t0 + 11s));
    CHECK_FALSE(limiter.check("a", t0 + 11s).allowed);
}

TEST_CASE("a bucket never holds more than the rate")
{
    RateLimiter limiter(3);
    REQUIRE(take(limiter, "a", 3, t0));
    CHECK(take(limiter, "a", 3, t0 + 59min));
    CHECK_FALSE(limiter.check("a", t0 + 59min).allowed);
}

TEST_CASE("a refused request takes no token")
{
    RateLimiter limiter(60);
    REQUIRE(take(limiter, "a", 60, t0));
    for (int i = 0; i < 100; ++i)
        REQUIRE_FALSE(limiter.check("a", t0 + 500ms).allowed);
    CHECK(limiter.check("a", t0 + 1s).allowed);
}

TEST_CASE("keys have buckets of their own")
{
    RateLimiter limiter(2);
    REQUIRE(take(limiter, "http://arne.local", 2, t0));
    CHECK_FALSE(limiter.check("http://arne.local", t0).allowed);
    CHECK(take(limiter, "http://marcus.example", 2, t0));
    CHECK(take(limiter, "203.0.113.7", 2, t0));
}

TEST_CASE("a rate of zero means no limit and keeps nothing")
{
    RateLimiter limiter(0);
    for (int i = 0; i < 10000; ++i)
        REQUIRE(limiter.check("key " + std::to_string(i % 3), t0).allowed);
    CHECK(limiter.check("a", t0).retry_after_seconds == 0);
    CHECK(limiter.size() == 0);
}

TEST_CASE("time going backwards adds no tokens")
{
    RateLimiter limiter(60);
    RateLimiter::Clock::time_point later = t0 + 1h;
    REQUIRE(take(limiter, "a", 60, later));
    CHECK_FALSE(limiter.check("a", later - 30s).allowed);
    CHECK_FALSE(limiter.check("a", later).allowed);
    CHECK(limiter.check("a", later + 1s).allowed);
}

TEST_CASE("a key untouched for a minute is forgotten")
{
    RateLimiter limiter(60);
    REQUIRE(take(limiter, "old", 60, t0));
    REQUIRE(take(limiter, "recent", 1, t0 + 30s));
    CHECK(limiter.size() == 2);
    CHECK(limiter.check("other", t0 + 59s).allowed);
    CHECK(limiter.size() == 3);
    CHECK(limiter.check("other", t0 + 60s).allowed);
    CHECK(limiter.size() == 2); // "old" is full again, so it is gone
    CHECK(limiter.check("other", t0 + 120s).allowed);
    CHECK(limiter.size() == 1);
}

TEST_CASE("a forgotten key starts again with a full bucket")
{
    RateLimiter limiter(2);
    REQUIRE(take(limiter, "a", 2, t0));
    CHECK_FALSE(limiter.check("a", t0).allowed);
    CHECK(take(limiter, "a", 2, t0 + 60s));
    CHECK_FALSE(limiter.check("a", t0 + 60s).allowed);
}

TEST_CASE("beyond the key limit the least recently used key is evicted")
{
    RateLimiter limiter(1, 2);
    REQUIRE(take(limiter, "a", 1, t0));
    REQUIRE(take(limiter, "b", 1, t0 + 1s));
    CHECK_FALSE(limiter.check("a", t0 + 2s).allowed); // a is now the most recent
    CHECK(limiter.check("c", t0 + 3s).allowed);      // evicts b
    CHECK(limiter.size() == 2);
    CHECK(limiter.check("b", t0 + 4s).allowed);      // a fresh bucket; evicts a
    CHECK(limiter.check("a", t0 + 5s).allowed);      // a fresh bucket as well
    CHECK(limiter.size() == 2);
}

TEST_CASE("memory stays bounded under a flood of distinct keys")
{
    RateLimiter limiter(10, 1000);
    for (int i = 0; i < 100000; ++i)
        REQUIRE(limiter.check("203.0.113." + std::to_string(i), t0 + std::chrono::milliseconds(i)).allowed);
    CHECK(limiter.size() == 1000);
}

TEST_CASE("a rate above the maximum is clamped")
{
    RateLimiter limiter(4'000'000'000u);
    CHECK(limiter.per_minute() == RateLimiter::max_rate);
    CHECK(take(limiter, "a", 1000, t0));
}

TEST_CASE("the largest rate refills without overflow")
{
    RateLimiter limiter(RateLimiter::max_rate);
    REQUIRE(limiter.check("a", t0).allowed);
    CHECK(limiter.check("a", t0 + 59999ms).allowed);
    CHECK(limiter.check("a", t0 + 10min).allowed);
}
