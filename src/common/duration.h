// Durations as operators write them in the config: "250ms", "10s", "5m", "6h".
// Used by both processes for timeouts and delivery schedules.
#pragma once

#include "common/result.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace posta {

using Duration = std::chrono::milliseconds;

// Accepts a positive integer followed by one of ms, s, m, h, d (no spaces, no
// fractions). Anything else, overflow included, is an error.
Result<Duration> parse_duration(std::string_view text);

// Milliseconds since the Unix epoch by the system clock: the times the
// store keeps, the API shows and the metrics report.
int64_t wall_clock_ms();

// The shortest exact spelling: 10000ms -> "10s", 1500ms -> "1500ms".
std::string format_duration(Duration);

}
