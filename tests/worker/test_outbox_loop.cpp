// The outbox's pure rules: which answers are retried, the backoff schedule
// and its jitter, Retry-After, and the per-host circuit.
#include "worker/outbox_loop.h"

#include <doctest/doctest.h>

using namespace posta;
using namespace std::chrono_literals;

namespace {
int64_t ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }
}

TEST_CASE("200 and 202 are delivered, other 2xx and 3xx fail")
{
    CHECK(classify_status(200) == AttemptOutcome::Delivered);
    CHECK(classify_status(202) == AttemptOutcome::Delivered);
    CHECK(classify_status(201) == AttemptOutcome::Failed);
    CHECK(classify_status(204) == AttemptOutcome::Failed);
    CHECK(classify_status(301) == AttemptOutcome::Failed);
    CHECK(classify_status(100) == AttemptOutcome::Failed);
}

TEST_CASE("404, 408, 425, 429 and every 5xx are retried, other 4xx fail at once")
{
    for (int status : { 404, 408, 425, 429, 500, 502, 503, 504, 599 })
        CHECK(classify_status(status) == AttemptOutcome::Retry);
    for (int status : { 400, 401, 403, 409, 410, 413, 415, 422, 499 })
        CHECK(classify_status(status) == AttemptOutcome::Failed);
}

TEST_CASE("transport errors are retried, a cancelled request is abandoned, an invalid one fails")
{
    for (auto error : { HttpClientError::Connect, HttpClientError::Timeout, HttpClientError::Tls,
             HttpClientError::Protocol, HttpClientError::TooLarge, HttpClientError::Internal,
             HttpClientError::Refused })
        CHECK(classify_error(error) == AttemptOutcome::Retry);
    CHECK(classify_error(HttpClientError::Cancelled) == AttemptOutcome::Abandoned);
    CHECK(classify_error(HttpClientError::Invalid) == AttemptOutcome::Failed);
}

TEST_CASE("the retry delay doubles from the base, stays under the cap and within its jitter")
{
    Duration const base = 30s, max = 6h;
    for (double jitter : { 0.0, 0.3, 0.999999 }) {
        int64_t nominal = ms(base);
        for (int attempt = 1; attempt < 40; ++attempt) {
            int64_t delay = ms(retry_delay(attempt, base, max, jitter));
            int64_t expected = std::min(nominal, ms(max));
            CHECK(delay <= expected);
            CHECK(delay >= expected * 3 / 4);
            CHECK(delay <= ms(max));
            nominal = std::min(nominal * 2, ms(max));
        }
    }
    CHECK(ms(retry_delay(1, base, max, 0.0)) == 30'000);
    CHECK(ms(retry_delay(2, base, max, 0.0)) == 60'000);
    CHECK(ms(retry_delay(3, base, max, 0.0)) == 120'000);
    CHECK(ms(retry_delay(1000, base, max, 0.0)) == ms(max));
}

TEST_CASE("Retry-After is honoured as delta-seconds only")
{
    CHECK(parse_retry_after("7") == 7);
    CHECK(parse_retry_after(" 120 ") == 120);
    CHECK(!parse_retry_after(""));
    CHECK(!parse_retry_after("-1"));
    CHECK(!parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"));
}

TEST_CASE("a host circuit opens after consecutive failures and only a success closes it")
{
    HostCircuit circuit(3);
    int64_t now = 1'000'000;
    CHECK(circuit.allows(now, 3));
    circuit.on_failure(now, 1s, 60s, 0.0);
    circuit.on_failure(now, 1s, 60s, 0.0);
    CHECK(!circuit.open());
    circuit.on_failure(now, 1s, 60s, 0.0);
    CHECK(circuit.open());
    // Open: nothing before the probe time, then one probe at a time.
    CHECK(circuit.probe_at_ms() == now + 1000);
    CHECK(!circuit.allows(now, 0));
    CHECK(circuit.allows(now + 1000, 0));
    CHECK(!circuit.allows(now + 1000, 1));
    // A failed probe moves the probe time on the same schedule.
    circuit.on_failure(now + 1000, 1s, 60s, 0.0);
    CHECK(circuit.probe_at_ms() == now + 1000 + 2000);
    for (int i = 0; i < 20; ++i)
        circuit.on_failure(now, 1s, 60s, 0.0);
    CHECK(circuit.probe_at_ms() <= now + 60'000);
    circuit.on_success();
    CHECK(!circuit.open());
    CHECK(circuit.allows(now, 2));
}
