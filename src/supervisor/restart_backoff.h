// RestartBackoff: when the supervisor starts a worker again after it ended
// (ARCHITECTURE.md, "Supervisor"). A worker that had been ready comes back
// at once: a crash then is likely one bad request. One that ends before it
// was ready (a broken keys.json, a full disk) is retried after a delay that
// doubles from 1 s up to 60 s, so a broken identity costs the machine
// little. A worker that stayed ready for a minute has earned a fresh
// doubling. Pure: WorkerProcess keeps one and does the waiting.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace posta {

class RestartBackoff {
public:
    static constexpr std::chrono::milliseconds first { 1000 };
    static constexpr std::chrono::milliseconds cap { 60000 };
    static constexpr uint64_t healthy_uptime_ms = 60000;

    // The delay before starting again a worker that ended, 0 for at once;
    // `ready_for_ms` is how long it had been ready (when `was_ready`).
    std::chrono::milliseconds after_exit(bool was_ready, uint64_t ready_for_ms)
    {
        if (was_ready) {
            if (ready_for_ms >= healthy_uptime_ms)
                m_delay = first;
            return std::chrono::milliseconds(0);
        }
        auto delay = m_delay;
        m_delay = std::min(m_delay * 2, cap);
        return delay;
    }

    // The delay after a start that failed before a process ran (no channel,
    // no fork): the current one, which this does not double.
    std::chrono::milliseconds current() const { return m_delay; }

private:
    std::chrono::milliseconds m_delay = first;
};

}
