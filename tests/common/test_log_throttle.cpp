// LogThrottle on a real loop with a short interval: the first line at once,
// a flood held and summed up in one line with its count, quiet afterwards.
#include "common/log_throttle.h"

#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace posta;

namespace {

// The throttle's timer does not keep a loop alive; this one's deadline
// timer does, so that uv_run waits for the throttle's.
struct Loop {
    Loop()
    {
        REQUIRE(uv_loop_init(&loop) == 0);
        uv_timer_init(&loop, &deadline);
        uv_timer_start(&deadline, [](uv_timer_t*) noexcept {}, 5000, 0);
    }
    ~Loop()
    {
        uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&loop) == 0);
    }
    // Runs the loop until `lines` has `count` entries or 5 s passed.
    void wait_for(std::vector<std::string> const& lines, size_t count)
    {
        uint64_t until = uv_now(&loop) + 5000;
        while (lines.size() < count && uv_now(&loop) < until)
            uv_run(&loop, UV_RUN_ONCE);
    }
    uv_loop_t loop {};
    uv_timer_t deadline {};
};

}

TEST_CASE("a flood of one warning is its first line and one line with the count")
{
    Loop l;
    std::vector<std::string> lines;
    {
        LogThrottle throttle(&l.loop, log::Level::Warn, std::chrono::milliseconds(100),
            [&](std::string_view line) { lines.emplace_back(line); });
        for (int i = 1; i <= 538; ++i)
            throttle.log("dropped " + std::to_string(i));
        CHECK(lines == std::vector<std::string> { "dropped 1" });
        l.wait_for(lines, 2);
        REQUIRE(lines.size() == 2);
        CHECK(lines[1] == "dropped 538 (and 536 more in the last 100ms)");
    }
    CHECK(lines.size() == 2);
}

TEST_CASE("one held warning is logged as it is, and a quiet throttle logs at once again")
{
    Loop l;
    std::vector<std::string> lines;
    LogThrottle throttle(&l.loop, log::Level::Warn, std::chrono::milliseconds(50),
        [&](std::string_view line) { lines.emplace_back(line); });
    throttle.log("a");
    throttle.log("b");
    l.wait_for(lines, 2);
    CHECK(lines == std::vector<std::string> { "a", "b" });
    // An interval without any: the next is logged at once.
    uint64_t quiet_until = uv_now(&l.loop) + 80;
    while (uv_now(&l.loop) < quiet_until) {
        uv_update_time(&l.loop);
        uv_run(&l.loop, UV_RUN_NOWAIT);
    }
    throttle.log("c");
    CHECK(lines.back() == "c");
}

TEST_CASE("what is still held when the throttle goes away is logged")
{
    Loop l;
    std::vector<std::string> lines;
    {
        LogThrottle throttle(&l.loop, log::Level::Warn, std::chrono::seconds(10),
            [&](std::string_view line) { lines.emplace_back(line); });
        throttle.log("first");
        throttle.log("second");
        throttle.log("third");
    }
    CHECK(lines == std::vector<std::string> { "first", "third (and 1 more in the last 10s)" });
}
