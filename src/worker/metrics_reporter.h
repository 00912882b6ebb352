// MetricsReporter: sends the worker's metrics (ipc/worker_report.h) to the
// supervisor on its channel, batched so that serving costs nothing extra per
// request: after a loop turn in which something changed it sends one report,
// at most one a second, and while nothing changes it repeats the last one as
// a heartbeat every heartbeat_ms, without waking the worker for anything
// else. A worker that stops reporting is hung (its loop is stuck), and the
// supervisor's posta_worker_report_timestamp_seconds shows since when.
// Owns a check handle and two timers, none of which keeps the loop alive.
#pragma once

#include "common/uv_handle.h"
#include "ipc/worker_report.h"

#include <cstdint>
#include <functional>
#include <string>

namespace posta {

class MetricsReporter {
public:
    static constexpr uint64_t min_interval_ms = 1000;
    static constexpr uint64_t heartbeat_ms = 15000;

    // `activity` is cheap and is called after every loop turn: a number that
    // changes whenever something the report holds may have changed.
    // `collect` writes the report (it may query the store); it is called
    // at most once per min_interval_ms. Sends the first report now.
    using Activity = std::function<uint64_t()>;
    using Collect = std::function<WorkerReport()>;
    MetricsReporter(uv_loop_t*, int channel, Activity, Collect);
    MetricsReporter(MetricsReporter const&) = delete;
    MetricsReporter& operator=(MetricsReporter const&) = delete;

    // For changes made in close callbacks, which libuv runs after the
    // turn's check: without this one a closed connection would wait for
    // the next wake-up (the heartbeat, on an idle worker) to be reported.
    void note_change() { on_turn(); }

private:
    void on_turn();
    void flush();
    void send();

    uv_loop_t* m_loop;
    int m_channel;
    Activity m_activity;
    Collect m_collect;
    uint64_t m_sent_activity = 0;
    uint64_t m_sent_at_ms = 0;
    std::string m_last; // the last report, serialized, for the heartbeat
    UvHandle<uv_check_t> m_check;
    UvHandle<uv_timer_t> m_flush_timer; // armed while a change waits for min_interval_ms
    UvHandle<uv_timer_t> m_heartbeat;
};

}
