// The restart schedule of a worker (supervisor/restart_backoff.h): at once
// after a worker that served, doubling delays for one that never got ready,
// and a fresh doubling after a healthy minute.
#include "supervisor/restart_backoff.h"

#include <doctest/doctest.h>

using namespace posta;
using namespace std::chrono_literals;

TEST_CASE("a worker that never got ready is retried after 1, 2, 4 ... seconds, never more than a minute apart")
{
    RestartBackoff backoff;
    std::chrono::milliseconds expected[] = { 1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s };
    for (auto delay : expected)
        CHECK(backoff.after_exit(false, 0) == delay);
}

TEST_CASE("a worker that crashes after it was ready comes back at once")
{
    RestartBackoff backoff;
    CHECK(backoff.after_exit(true, 5) == 0ms);
    CHECK(backoff.after_exit(true, 120'000) == 0ms);
}

TEST_CASE("a short ready run keeps the doubling where it was; a healthy minute starts it over")
{
    RestartBackoff backoff;
    backoff.after_exit(false, 0); // 1 s
    backoff.after_exit(false, 0); // 2 s
    CHECK(backoff.current() == 4s);
    CHECK(backoff.after_exit(true, RestartBackoff::healthy_uptime_ms - 1) == 0ms);
    CHECK(backoff.after_exit(false, 0) == 4s);
    CHECK(backoff.after_exit(true, RestartBackoff::healthy_uptime_ms) == 0ms);
    CHECK(backoff.after_exit(false, 0) == 1s);
}

TEST_CASE("a start that fails before a process runs waits the current delay without doubling it")
{
    RestartBackoff backoff;
    CHECK(backoff.current() == 1s);
    CHECK(backoff.current() == 1s);
    backoff.after_exit(false, 0);
    CHECK(backoff.current() == 2s);
}
