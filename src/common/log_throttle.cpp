#include "log_throttle.h"

namespace posta {

LogThrottle::LogThrottle(uv_loop_t* loop, log::Level level, Duration interval, Sink sink)
    : m_loop(loop)
    , m_level(level)
    , m_interval_ms(static_cast<uint64_t>(interval.count()))
    , m_sink(std::move(sink))
    , m_timer(make_timer(loop, this))
{
    // A held line never keeps the loop (and so a stopping worker) running:
    // the destructor logs it.
    uv_unref(reinterpret_cast<uv_handle_t*>(m_timer.get()));
}

LogThrottle::~LogThrottle()
{
    if (m_held > 0)
        on_interval_over();
}

void LogThrottle::log(std::string line)
{
    uint64_t now = uv_now(m_loop);
    if (m_held == 0 && (!m_logged_once || now - m_last_logged_at >= m_interval_ms)) {
        emit(line);
        m_logged_once = true;
        m_last_logged_at = now;
        return;
    }
    ++m_held;
    m_latest = std::move(line);
    if (!uv_is_active(reinterpret_cast<uv_handle_t const*>(m_timer.get())))
        start_timer_at(m_timer.get(), m_last_logged_at + m_interval_ms, [](uv_timer_t* timer) noexcept {
            if (auto* self = static_cast<LogThrottle*>(timer->data))
                self->on_interval_over();
        });
}

void LogThrottle::on_interval_over()
{
    if (m_held == 0)
        return;
    std::string line = std::move(m_latest);
    if (m_held > 1)
        line += " (and " + std::to_string(m_held - 1) + " more in the last " + format_duration(Duration(m_interval_ms)) + ")";
    m_held = 0;
    m_latest.clear();
    m_last_logged_at = uv_now(m_loop);
    emit(line);
}

void LogThrottle::emit(std::string_view line)
{
    if (m_sink)
        m_sink(line);
    else
        log::write(m_level, line);
}

}
