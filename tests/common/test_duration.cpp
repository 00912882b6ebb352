#include "common/duration.h"

#include <doctest/doctest.h>

using namespace posta;
using namespace std::chrono_literals;

namespace {

// The parsed value, or -1ms when the text is refused.
Duration parse(std::string_view text)
{
    auto parsed = parse_duration(text);
    return parsed ? *parsed : Duration(-1);
}

}

TEST_CASE("every documented unit parses to its length in milliseconds")
{
    CHECK(parse("250ms") == 250ms);
    CHECK(parse("10s") == 10s);
    CHECK(parse("5m") == 5min);
    CHECK(parse("6h") == 6h);
    CHECK(parse("3d") == 72h);
    CHECK(parse("1ms") == 1ms);
    CHECK(parse("010s") == 10s);
}

TEST_CASE("zero is refused because no timeout or delay in the config may be zero")
{
    CHECK(parse("0s") == Duration(-1));
    CHECK(parse("0ms") == Duration(-1));
    CHECK(parse("000h") == Duration(-1));
}

TEST_CASE("signs, spaces, fractions, missing or unknown units are refused")
{
    for (auto text : { "", "s", "10", "-5s", "+5s", "1.5s", "10 s", " 10s", "10s ", "10S", "10sec",
             "10us", "5M", "1h30m", "ms10", "10ms5", "1e3ms" }) {
        CAPTURE(text);
        CHECK(parse(text) == Duration(-1));
    }
}

TEST_CASE("a refused text is an error that says why and quotes the text")
{
    auto unit = parse_duration("10sec");
    REQUIRE_FALSE(unit.ok());
    CHECK(unit.error().text() == "duration \"10sec\": the unit is not one of ms, s, m, h, d");
    auto zero = parse_duration("0s");
    REQUIRE_FALSE(zero.ok());
    CHECK(zero.error().detail == "it is zero");
}

TEST_CASE("values that overflow 64-bit milliseconds are refused")
{
    CHECK(parse("9223372036854775807ms") == Duration(INT64_MAX));
    CHECK(parse("9223372036854775808ms") == Duration(-1));
    CHECK(parse("9223372036854776s") == Duration(-1));
    CHECK(parse("106751991167d") == Duration(106751991167LL * 86400000LL));
    CHECK(parse("106751991168d") == Duration(-1));
    CHECK(parse("99999999999999999999999999d") == Duration(-1));
    CHECK(parse("106751991d") == Duration(106751991LL * 86400000LL));
}

TEST_CASE("format_duration picks the largest unit that is exact")
{
    CHECK(format_duration(10000ms) == "10s");
    CHECK(format_duration(1500ms) == "1500ms");
    CHECK(format_duration(250ms) == "250ms");
    CHECK(format_duration(5min) == "5m");
    CHECK(format_duration(90s) == "90s");
    CHECK(format_duration(6h) == "6h");
    CHECK(format_duration(72h) == "3d");
    CHECK(format_duration(25h) == "25h");
}

TEST_CASE("format_duration spells zero and negative values in milliseconds")
{
    CHECK(format_duration(0ms) == "0ms");
    CHECK(format_duration(-5000ms) == "-5000ms");
}

TEST_CASE("format_duration output parses back to the same value")
{
    for (Duration d : { Duration(1), Duration(999), Duration(1000), Duration(61000), Duration(3600000),
             Duration(86400000), Duration(86400001), Duration(INT64_MAX) }) {
        CAPTURE(d.count());
        CHECK(parse(format_duration(d)) == d);
    }
}
