// Logging for both processes: one event per line on stderr, with time, level,
// the process role (supervisor or the worker's slug) and pid. Text or JSON
// lines, chosen by the config's log_format; lines below log_level are dropped.
#pragma once

#include "common/result.h"

#include <string>
#include <string_view>

namespace posta::log {

enum class Level { Debug, Info, Warn, Error };
enum class Format { Text, Json };

// "debug", "info", "warn", "error"; "text", "json". Anything else is an error.
Result<Level> parse_level(std::string_view);
Result<Format> parse_format(std::string_view);

// Set once at start; in a worker the role is its slug.
void configure(Level, Format);
void set_role(std::string role);

bool enabled(Level);
void write(Level, std::string_view message);

void debug(char const* fmt, ...) __attribute__((format(printf, 1, 2)));
void info(char const* fmt, ...) __attribute__((format(printf, 1, 2)));
void warn(char const* fmt, ...) __attribute__((format(printf, 1, 2)));
void error(char const* fmt, ...) __attribute__((format(printf, 1, 2)));

}
