#include "protocol/timestamp.h"

#include <doctest/doctest.h>

using namespace posta;
using namespace std::chrono;

namespace {

// Seconds since the epoch of a time that must parse.
int64_t epoch_seconds(std::string_view text)
{
    auto parsed = parse_rfc3339(text);
    REQUIRE_MESSAGE(parsed.ok(), parsed.error().text());
    return duration_cast<seconds>(parsed->time_since_epoch()).count();
}

bool refused_with(std::string_view text, std::string_view words)
{
    auto parsed = parse_rfc3339(text);
    if (parsed) {
        MESSAGE("accepted: ", text);
        return false;
    }
    bool found = parsed.error().detail.find(words) != std::string::npos;
    if (!found)
        MESSAGE("detail: ", parsed.error().detail);
    return found;
}

}

TEST_CASE("a UTC time in whole seconds parses to its instant")
{
    CHECK(epoch_seconds("1970-01-01T00:00:00Z") == 0);
    CHECK(epoch_seconds("2026-11-27T09:00:00Z") == 1795770000);
    CHECK(epoch_seconds("2024-02-29T23:59:59Z") == 1709251199);
}

TEST_CASE("what format_rfc3339 writes parse_rfc3339 reads back")
{
    auto when = sys_seconds(seconds(1795770000));
    auto parsed = parse_rfc3339(format_rfc3339(when));
    REQUIRE(parsed.ok());
    CHECK(*parsed == when);
}

TEST_CASE("a fraction of a second is kept to the clock's resolution")
{
    auto parsed = parse_rfc3339("2026-11-27T09:00:00.25Z");
    REQUIRE(parsed.ok());
    CHECK(parsed->time_since_epoch() == seconds(1795770000) + milliseconds(250));
    auto fine = parse_rfc3339("1970-01-01T00:00:00.0000000019999Z");
    REQUIRE(fine.ok());
    CHECK(fine->time_since_epoch() == nanoseconds(1));
}

TEST_CASE("lower-case t and z are accepted as RFC 3339 allows")
{
    CHECK(epoch_seconds("2026-11-27t09:00:00z") == 1795770000);
}

TEST_CASE("a numeric offset is refused even when it is zero")
{
    CHECK(refused_with("2026-11-27T09:00:00+00:00", "end in 'Z'"));
    CHECK(refused_with("2026-11-27T10:00:00+01:00", "end in 'Z'"));
    CHECK(refused_with("2026-11-27T09:00:00-00:00", "end in 'Z'"));
    CHECK(refused_with("2026-11-27T09:00:00", "end in 'Z'"));
}

TEST_CASE("anything but the fixed layout is refused")
{
    for (std::string_view text : { "", "2026-11-27", "2026-11-27 09:00:00Z", "2026-11-27T9:00:00Z",
             "26-11-27T09:00:00Z", "+2026-11-27T09:00:00Z", "2026-11-27T09:00Z", "2026-11-27T09:00:00ZZ",
             "2026-11-27T09:00:00Z ", " 2026-11-27T09:00:00Z", "2026/11/27T09:00:00Z", "2026-11-27T09:00:00.Z",
             "2026-11-27T09:00:00,5Z", "1795770000", "２026-11-27T09:00:00Z" }) {
        CAPTURE(text);
        CHECK_FALSE(parse_rfc3339(text).ok());
    }
}

TEST_CASE("impossible dates and times of day are refused")
{
    CHECK(refused_with("2026-02-29T00:00:00Z", "no such date"));
    CHECK(refused_with("2026-13-01T00:00:00Z", "no such date"));
    CHECK(refused_with("2026-00-10T00:00:00Z", "no such date"));
    CHECK(refused_with("2026-04-31T00:00:00Z", "no such date"));
    CHECK(refused_with("2026-11-27T24:00:00Z", "out of range"));
    CHECK(refused_with("2026-11-27T09:60:00Z", "out of range"));
    CHECK(refused_with("2026-11-27T09:00:61Z", "out of range"));
}

TEST_CASE("a leap second is refused with advice")
{
    CHECK(refused_with("2016-12-31T23:59:60Z", "leap second"));
}

TEST_CASE("a time the clock cannot hold is refused instead of overflowing")
{
    CHECK(refused_with("9999-12-31T23:59:59Z", "outside the range"));
    CHECK(refused_with("0001-01-01T00:00:00Z", "outside the range"));
    CHECK(epoch_seconds("2200-01-01T00:00:00Z") == 7258118400);
}

TEST_CASE("a time longer than 64 characters is refused and cut short in the error")
{
    std::string text = "2026-11-27T09:00:00." + std::string(1000, '1') + "Z";
    auto parsed = parse_rfc3339(text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().context.size() == 67);
    CHECK(parse_rfc3339("2026-11-27T09:00:00." + std::string(43, '1') + "Z").ok());
}

TEST_CASE("the HTTP date is the IMF-fixdate in GMT, whatever the locale")
{
    CHECK(format_http_date(sys_seconds(seconds(1795770000))) == "Fri, 27 Nov 2026 09:00:00 GMT");
    CHECK(format_http_date(sys_seconds(seconds(0))) == "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST_CASE("the cached HTTP date of now is now's, to the second")
{
    for (int i = 0; i < 3; ++i) {
        auto before = format_http_date(system_clock::now());
        std::string now(http_date_now());
        auto after = format_http_date(system_clock::now());
        CHECK((now == before || now == after));
    }
}
