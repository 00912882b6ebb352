// WorkerReport's channel form: what a worker sends the supervisor comes back
// whole, and what no worker of ours would send is refused, not misread.
#include "ipc/worker_report.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

WorkerReport sample_report()
{
    WorkerReport report;
    report.responses = { 0, 12, 3, 4, 1 };
    report.deliveries_accepted = 7;
    report.deliveries_duplicate = 2;
    report.deliveries_refused.add("sender_denied");
    report.deliveries_refused.add("bad_signature", 3);
    report.deliveries_refused.add("sender_denied");
    report.outbox_queued = 5;
    report.outbox_delivered = 6;
    report.outbox_failed = 1;
    report.outbox_oldest_queued_ms = 1764648000123;
    report.event_subscribers = 2;
    report.open_connections = 9;
    return report;
}

}

TEST_CASE("a worker report survives its channel form")
{
    WorkerReport report = sample_report();
    auto back = WorkerReport::deserialize(report.serialize());
    REQUIRE(back);
    CHECK(back.value() == report);
    REQUIRE(back->deliveries_refused.entries.size() == 2);
    CHECK(back->deliveries_refused.entries[0] == std::pair<std::string, uint64_t> { "bad_signature", 3 });
    CHECK(back->deliveries_refused.entries[1] == std::pair<std::string, uint64_t> { "sender_denied", 2 });
    CHECK(WorkerReport::deserialize(WorkerReport {}.serialize()).value() == WorkerReport {});
}

TEST_CASE("refusal codes are kept sorted and bounded")
{
    CodeCounts counts;
    counts.add("b");
    counts.add("a");
    counts.add("c", 4);
    CHECK(counts.entries == std::vector<std::pair<std::string, uint64_t>> { { "a", 1 }, { "b", 1 }, { "c", 4 } });
    for (size_t i = 0; i < CodeCounts::max_codes * 2; ++i)
        counts.add("code_" + std::to_string(i));
    CHECK(counts.entries.size() == CodeCounts::max_codes);
}

TEST_CASE("the counters of an earlier process add up, its gauges do not")
{
    WorkerReport total = sample_report();
    WorkerReport later;
    later.responses[1] = 1;
    later.deliveries_refused.add("rate_limited");
    later.open_connections = 1;
    total.add_counters(later);
    CHECK(total.responses[1] == 13);
    CHECK(total.deliveries_accepted == 7);
    CHECK(total.deliveries_refused.entries.size() == 3);
    CHECK(total.open_connections == 9);
}

TEST_CASE("a malformed worker report is refused with the reason")
{
    auto refused = [](std::string_view text, std::string_view why) {
        auto parsed = WorkerReport::deserialize(text);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().text().find(why) != std::string::npos);
    };
    refused("accepted 1", "unterminated");
    refused("accepted\n", "without a value");
    refused("accepted x\n", "bad number");
    refused("accepted -1\n", "bad number");
    refused("accepted 99999999999999999999999\n", "bad number");
    refused("accepted 1\naccepted 2\n", "repeated key");
    refused("responses_6xx 1\n", "unknown key");
    refused("refused Bad-Code 1\n", "bad refusal code");
    refused("refused b 1\nrefused a 1\n", "out of order");
    refused("refused a 1\nrefused a 1\n", "out of order");
    std::string many;
    for (size_t i = 0; i <= CodeCounts::max_codes; ++i)
        many += "refused c" + std::string(3 - std::to_string(i).size(), '0') + std::to_string(i) + " 1\n";
    refused(many, "too many");
    CHECK(WorkerReport::deserialize(""));
}
