#include "log.h"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <sys/time.h>
#include <unistd.h>

namespace posta::log {

namespace {

Level g_level = Level::Info;
Format g_format = Format::Text;
std::string g_role = "posta-server";

char const* level_name(Level level)
{
    switch (level) {
    case Level::Debug:
        return "debug";
    case Level::Info:
        return "info";
    case Level::Warn:
        return "warn";
    case Level::Error:
        return "error";
    }
    return "?";
}

void append_json_string(std::string& out, std::string_view text)
{
    out += '"';
    for (unsigned char c : text) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    out += '"';
}

void vwrite(Level level, char const* fmt, va_list args)
{
    if (!enabled(level))
        return;
    char buf[2048];
    int n = std::vsnprintf(buf, sizeof buf, fmt, args);
    if (n < 0)
        return;
    size_t len = static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1;
    write(level, std::string_view(buf, len));
}

}

Result<Level> parse_level(std::string_view text)
{
    for (Level l : { Level::Debug, Level::Info, Level::Warn, Level::Error }) {
        if (text == level_name(l))
            return l;
    }
    return Error::message("log level", "not one of debug, info, warn, error", std::string(text));
}

Result<Format> parse_format(std::string_view text)
{
    if (text == "text")
        return Format::Text;
    if (text == "json")
        return Format::Json;
    return Error::message("log format", "not one of text, json", std::string(text));
}

void configure(Level level, Format format)
{
    g_level = level;
    g_format = format;
}

void set_role(std::string role) { g_role = std::move(role); }

bool enabled(Level level) { return level >= g_level; }

void write(Level level, std::string_view message)
{
    if (!enabled(level))
        return;
    timeval tv {};
    gettimeofday(&tv, nullptr);
    tm utc {};
    gmtime_r(&tv.tv_sec, &utc);
    char stamp[96];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900,
        utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, tv.tv_usec / 1000);

    std::string line;
    line.reserve(message.size() + 96);
    if (g_format == Format::Json) {
        line += "{\"ts\":\"";
        line += stamp;
        line += "\",\"level\":\"";
        line += level_name(level);
        line += "\",\"role\":";
        append_json_string(line, g_role);
        line += ",\"pid\":" + std::to_string(getpid()) + ",\"msg\":";
        append_json_string(line, message);
        line += "}\n";
    } else {
        line += stamp;
        line += ' ';
        line += level_name(level);
        line += ' ';
        line += g_role;
        line += '[' + std::to_string(getpid()) + "]: ";
        line += message;
        line += '\n';
    }
    // One write(2) per line keeps lines of concurrent processes whole.
    ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
}

#define POSTA_LOG_FN(name, level)        \
    void name(char const* fmt, ...)      \
    {                                    \
        va_list args;                    \
        va_start(args, fmt);             \
        vwrite(level, fmt, args);        \
        va_end(args);                    \
    }

POSTA_LOG_FN(debug, Level::Debug)
POSTA_LOG_FN(info, Level::Info)
POSTA_LOG_FN(warn, Level::Warn)
POSTA_LOG_FN(error, Level::Error)

}
