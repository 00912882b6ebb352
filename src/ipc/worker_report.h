// WorkerReport: what a worker tells the supervisor about its identity for
// the metrics endpoint (supervisor/metrics_server.h): its counters since it
// started and a few gauges. The worker's MetricsReporter sends one on its
// channel (send_metrics) at most once a second while something changes, and
// as a heartbeat; the supervisor keeps the last one per worker. Text on the
// wire, one "name value" line each, like Policy.
#pragma once

#include "common/result.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace posta {

// Counts by error code, sorted by code; codes past max_codes are not kept.
struct CodeCounts {
    static constexpr size_t max_codes = 64;
    std::vector<std::pair<std::string, uint64_t>> entries;

    void add(std::string_view code, uint64_t count = 1);
    void add(CodeCounts const& other);
    bool operator==(CodeCounts const&) const = default;
};

struct WorkerReport {
    // Responses by status class: [0] is 1xx ... [4] is 5xx.
    std::array<uint64_t, 5> responses {};
    uint64_t deliveries_accepted = 0;
    uint64_t deliveries_duplicate = 0;
    // Refused deliveries by the error code of their answer (PROTOCOL.md):
    // codes of this program, never a client's words; sorted by code.
    CodeCounts deliveries_refused;
    // Gauges: the outbox's deliveries by state (counted in the store), when
    // the oldest queued one was queued (ms since the epoch; 0: none queued),
    // open event streams and open connections.
    uint64_t outbox_queued = 0;
    uint64_t outbox_delivered = 0;
    uint64_t outbox_failed = 0;
    uint64_t outbox_oldest_queued_ms = 0;
    uint64_t event_subscribers = 0;
    uint64_t open_connections = 0;

    // Adds `other`'s counters (not its gauges) to this one's: the totals of
    // a worker's earlier processes carried across a restart.
    void add_counters(WorkerReport const& other);

    std::string serialize() const;
    // A report that does not parse is the sending worker's fault; the error
    // says what is wrong with it.
    static Result<WorkerReport> deserialize(std::string_view);

    bool operator==(WorkerReport const&) const = default;
};

}
