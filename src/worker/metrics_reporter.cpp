#include "metrics_reporter.h"

#include "ipc/channel.h"
#include "common/log.h"

namespace posta {

MetricsReporter::MetricsReporter(uv_loop_t* loop, int channel, Activity activity, Collect collect)
    : m_loop(loop)
    , m_channel(channel)
    , m_activity(std::move(activity))
    , m_collect(std::move(collect))
{
    auto* check = new uv_check_t {};
    uv_check_init(loop, check);
    check->data = this;
    m_check = UvHandle<uv_check_t>::adopt(check);
    m_flush_timer = make_timer(loop, this);
    m_heartbeat = make_timer(loop, this);
    for (auto* handle : { reinterpret_cast<uv_handle_t*>(m_check.get()), reinterpret_cast<uv_handle_t*>(m_flush_timer.get()),
             reinterpret_cast<uv_handle_t*>(m_heartbeat.get()) })
        uv_unref(handle);
    // A check handle runs once per loop turn, after the turn's I/O, and
    // never makes the loop wake up by itself.
    uv_check_start(m_check.get(), [](uv_check_t* h) noexcept {
        if (auto* self = static_cast<MetricsReporter*>(h->data))
            self->on_turn();
    });
    uv_timer_start(m_heartbeat.get(), [](uv_timer_t* h) noexcept {
        if (auto* self = static_cast<MetricsReporter*>(h->data))
            self->send();
    }, heartbeat_ms, heartbeat_ms);
    flush();
}

void MetricsReporter::on_turn()
{
    if (m_activity() == m_sent_activity || uv_is_active(reinterpret_cast<uv_handle_t*>(m_flush_timer.get())))
        return;
    start_timer_at(m_flush_timer.get(), m_sent_at_ms + min_interval_ms, [](uv_timer_t* h) noexcept {
        if (auto* self = static_cast<MetricsReporter*>(h->data))
            self->flush();
    });
}

void MetricsReporter::flush()
{
    m_sent_activity = m_activity();
    m_sent_at_ms = uv_now(m_loop);
    m_last = m_collect().serialize();
    send();
    // The heartbeat counts from the last report.
    uv_timer_again(m_heartbeat.get());
}

void MetricsReporter::send()
{
    // A full channel means the supervisor is behind; the next report
    // carries the news. Anything else is the supervisor gone, whose EOF the
    // worker hears on the channel.
    if (auto sent = send_metrics(m_channel, m_last); !sent && !sent.error().is(ErrorDomain::Errno, EAGAIN))
        log::debug("metrics report: %s", sent.error().text().c_str());
}

}
