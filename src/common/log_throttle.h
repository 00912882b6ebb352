// LogThrottle: one kind of warning that a stranger can repeat at will, logged
// at most once per interval. The first occurrence is logged at once; those
// within the interval after it are counted, and when the interval is over
// the latest is logged with the count: "... (and 536 more in the last 10s)".
// Used by the worker for the connections it drops or refuses. Owns one timer
// on the loop, which does not keep the loop alive; what is still held is
// logged when it is destroyed.
#pragma once

#include "common/duration.h"
#include "common/log.h"
#include "common/uv_handle.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <uv.h>

namespace posta {

class LogThrottle {
public:
    // Where lines go; log::write at `level` unless a test catches them.
    using Sink = std::function<void(std::string_view line)>;

    LogThrottle(uv_loop_t*, log::Level, Duration interval, Sink = {});
    LogThrottle(LogThrottle const&) = delete;
    LogThrottle& operator=(LogThrottle const&) = delete;
    ~LogThrottle();

    // Logs `line` now, or holds it for the end of the interval.
    void log(std::string line);

private:
    void on_interval_over();
    void emit(std::string_view line);

    uv_loop_t* m_loop;
    log::Level m_level;
    uint64_t m_interval_ms;
    Sink m_sink;
    UvHandle<uv_timer_t> m_timer;
    bool m_logged_once = false;
    uint64_t m_last_logged_at = 0; // loop time
    size_t m_held = 0;             // occurrences since the last line
    std::string m_latest;          // the last one held
};

}
