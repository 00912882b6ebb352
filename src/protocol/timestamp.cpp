#include "timestamp.h"

#include <cstdio>
#include <ctime>
#include <string>

namespace posta {

namespace {

tm utc_of(std::chrono::system_clock::time_point when)
{
    time_t seconds = std::chrono::system_clock::to_time_t(when);
    tm out {};
    gmtime_r(&seconds, &out);
    return out;
}

}

std::string format_rfc3339(std::chrono::system_clock::time_point when)
{
    tm t = utc_of(when);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", t.tm_year + 1900, t.tm_mon + 1,
        t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec);
    return buf;
}

std::string format_http_date(std::chrono::system_clock::time_point when)
{
    static char const* const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static char const* const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
        "Sep", "Oct", "Nov", "Dec" };
    tm t = utc_of(when);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[t.tm_wday % 7],
        t.tm_mday, months[t.tm_mon % 12], t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec);
    return buf;
}

std::string_view http_date_now()
{
    thread_local time_t formatted_second = -1;
    thread_local std::string formatted;
    auto now = std::chrono::system_clock::now();
    time_t second = std::chrono::system_clock::to_time_t(now);
    if (second != formatted_second) {
        formatted = format_http_date(now);
        formatted_second = second;
    }
    return formatted;
}

// Reading RFC 3339.
// A hand-written reader for one fixed layout, not a general date parser:
// every position is checked, so nothing sscanf or strptime would let through
// (signs, spaces, short fields, a locale) can pass. Dates use the proleptic
// Gregorian calendar of <chrono> (C++20), which also rejects impossible days.


namespace {

using Clock = std::chrono::system_clock;
static_assert(Clock::duration::period::num == 1, "the fraction code assumes ticks of 1/den second");

constexpr std::string_view example = "2026-11-27T09:00:00Z";

bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

// The value of `count` digits at `pos`, or -1 when one of them is not a digit
// or the text is too short.
int digits_at(std::string_view text, size_t pos, size_t count)
{
    if (pos + count > text.size())
        return -1;
    int value = 0;
    for (size_t i = pos; i < pos + count; ++i) {
        if (!is_digit(text[i]))
            return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

bool char_at(std::string_view text, size_t pos, char lower_or_symbol)
{
    if (pos >= text.size())
        return false;
    char c = text[pos];
    if (c >= 'A' && c <= 'Z')
        c = static_cast<char>(c - 'A' + 'a');
    return c == lower_or_symbol;
}

// The longest time accepted: the 20 fixed characters and a fraction of up
// to 44 digits. Longer input is refused without being echoed in full.
constexpr size_t max_length = 64;

Error time_error(std::string_view text, std::string detail)
{
    std::string context(text.substr(0, max_length));
    if (text.size() > max_length)
        context += "...";
    return Error::message("RFC 3339 time", std::move(detail), std::move(context));
}

Error layout_error(std::string_view text)
{
    return time_error(text, "not an RFC 3339 UTC time; write it like " + std::string(example));
}

}

Result<Clock::time_point> parse_rfc3339(std::string_view text)
{
    if (text.size() > max_length)
        return time_error(text, "the time is longer than 64 characters; write it like " + std::string(example));

    // Fixed part: YYYY-MM-DDTHH:MM:SS (19 characters).
    int year = digits_at(text, 0, 4);
    int month = digits_at(text, 5, 2);
    int day = digits_at(text, 8, 2);
    int hour = digits_at(text, 11, 2);
    int minute = digits_at(text, 14, 2);
    int second = digits_at(text, 17, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0
        || !char_at(text, 4, '-') || !char_at(text, 7, '-') || !char_at(text, 10, 't')
        || !char_at(text, 13, ':') || !char_at(text, 16, ':'))
        return layout_error(text);

    // Optional fraction, then the offset.
    size_t pos = 19;
    Clock::duration fraction {};
    if (char_at(text, pos, '.')) {
        ++pos;
        size_t first = pos;
        using Rep = Clock::duration::rep;
        Rep scale = Clock::duration::period::den; // ticks per second
        Rep ticks = 0;
        while (pos < text.size() && is_digit(text[pos])) {
            if (scale >= 10) {
                scale /= 10;
                ticks += (text[pos] - '0') * scale;
            }
            ++pos;
        }
        if (pos == first)
            return time_error(text, "the fraction after '.' has no digits; write it like 2026-11-27T09:00:00.250Z or drop the '.'");
        fraction = Clock::duration(ticks);
    }
    if (pos >= text.size())
        return time_error(text, "the time has no offset; posta times are UTC and end in 'Z'");
    if (text[pos] == '+' || text[pos] == '-')
        return time_error(text, "the offset \"" + std::string(text.substr(pos)) + "\" is not allowed; posta times are UTC and end in 'Z'");
    if (!char_at(text, pos, 'z') || pos + 1 != text.size())
        return layout_error(text);

    if (hour > 23 || minute > 59)
        return time_error(text, "the time of day is out of range; hours run 00-23 and minutes 00-59");
    if (second == 60)
        return time_error(text, "leap seconds (\":60\") are not accepted; write :59");
    if (second > 59)
        return time_error(text, "the seconds are out of range; they run 00-59");
    std::chrono::year_month_day date { std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
        std::chrono::day(static_cast<unsigned>(day)) };
    if (!date.ok())
        return time_error(text, "there is no such date");

    // In seconds (64 bits hold any 4-digit year), then checked against what
    // the clock can hold: with nanosecond ticks, about years 1678 to 2261.
    std::chrono::sys_seconds whole = std::chrono::sys_days(date) + std::chrono::hours(hour)
        + std::chrono::minutes(minute) + std::chrono::seconds(second);
    auto limit = std::chrono::duration_cast<std::chrono::seconds>(Clock::duration::max()) - std::chrono::seconds(1);
    if (whole.time_since_epoch() > limit || whole.time_since_epoch() < -limit)
        return time_error(text, "the time is outside the range this server can represent");
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(whole.time_since_epoch()) + fraction);
}

}
