// Durations as operators write them: a positive integer and a unit, nothing
// else. Zero is refused because every duration in the config is a timeout or
// a delay, and a zero one is a typo, never a wish ("0s" would mean "never
// wait" for head_timeout and a retry storm for delivery_retry_base).
#include "duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace posta {

namespace {

struct Unit {
    std::string_view suffix;
    int64_t ms;
};

// Largest first, so format_duration picks the shortest exact spelling.
constexpr std::array<Unit, 5> k_units { {
    { "d", 86'400'000 },
    { "h", 3'600'000 },
    { "m", 60'000 },
    { "s", 1'000 },
    { "ms", 1 },
} };

}

// The whole text must be consumed: "10 s", "+10s", "1.5s", "10S" and "10"
// are all refused.
Result<Duration> parse_duration(std::string_view text)
{
    auto refuse = [&](char const* why) { return Error::message("duration", why, "\"" + std::string(text) + "\""); };
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
        ++digits;
    if (digits == 0)
        return refuse("it does not start with a whole number");

    std::string_view suffix = text.substr(digits);
    int64_t unit_ms = 0;
    for (Unit const& unit : k_units) {
        if (suffix == unit.suffix) {
            unit_ms = unit.ms;
            break;
        }
    }
    if (unit_ms == 0)
        return refuse("the unit is not one of ms, s, m, h, d");

    constexpr int64_t max = std::numeric_limits<Duration::rep>::max();
    int64_t count = 0;
    for (size_t i = 0; i < digits; ++i) {
        int64_t digit = text[i] - '0';
        if (count > (max - digit) / 10)
            return refuse("it is too long");
        count = count * 10 + digit;
    }
    if (count == 0)
        return refuse("it is zero");
    if (count > max / unit_ms)
        return refuse("it is too long");
    return Duration(count * unit_ms);
}

// Zero and negative durations cannot come from parse_duration; they are
// spelled in milliseconds ("0ms", "-5ms") so the output is still exact.
std::string format_duration(Duration duration)
{
    int64_t ms = duration.count();
    if (ms <= 0)
        return std::to_string(ms) + "ms";
    for (Unit const& unit : k_units) {
        if (ms % unit.ms == 0)
            return std::to_string(ms / unit.ms) + std::string(unit.suffix);
    }
    return std::to_string(ms) + "ms"; // unreachable: the last unit divides everything
}

int64_t wall_clock_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}
