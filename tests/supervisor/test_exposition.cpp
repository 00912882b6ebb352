// The Prometheus text the metrics endpoint serves: each family's HELP and
// TYPE before its samples, labels in the order given, values escaped.
#include "supervisor/exposition.h"

#include <doctest/doctest.h>

using namespace posta;

TEST_CASE("a family is its HELP and TYPE lines followed by its samples in order")
{
    Exposition out;
    out.family("posta_worker_up", Exposition::Type::Gauge, "1 while serving.");
    out.sample({ { "identity", "arne" } }, uint64_t { 1 });
    out.sample({ { "identity", "bea" } }, uint64_t { 0 });
    out.family("posta_http_responses_total", Exposition::Type::Counter, "Responses.");
    out.sample({ { "identity", "arne" }, { "code", "2xx" } }, uint64_t { 18446744073709551615u });
    out.family("posta_reloads_total", Exposition::Type::Counter, "Reloads.");
    out.sample({}, uint64_t { 3 });
    CHECK(out.text()
        == "# HELP posta_worker_up 1 while serving.\n"
           "# TYPE posta_worker_up gauge\n"
           "posta_worker_up{identity=\"arne\"} 1\n"
           "posta_worker_up{identity=\"bea\"} 0\n"
           "# HELP posta_http_responses_total Responses.\n"
           "# TYPE posta_http_responses_total counter\n"
           "posta_http_responses_total{identity=\"arne\",code=\"2xx\"} 18446744073709551615\n"
           "# HELP posta_reloads_total Reloads.\n"
           "# TYPE posta_reloads_total counter\n"
           "posta_reloads_total 3\n");
}

TEST_CASE("label values escape backslash, double quote and line feed, and nothing else")
{
    Exposition out;
    out.family("m", Exposition::Type::Gauge, "h");
    out.sample({ { "identity", "a\\b\"c\nd\te{}=," } }, uint64_t { 1 });
    CHECK(out.text().ends_with("m{identity=\"a\\\\b\\\"c\\nd\te{}=,\"} 1\n"));
}

TEST_CASE("HELP text escapes backslash and line feed but not double quotes")
{
    Exposition out;
    out.family("m", Exposition::Type::Counter, "a \"quoted\" \\ path\nsecond line");
    CHECK(out.text() == "# HELP m a \"quoted\" \\\\ path\\nsecond line\n# TYPE m counter\n");
}

TEST_CASE("seconds are written with millisecond resolution, and the special values as the format spells them")
{
    Exposition out;
    out.family("t", Exposition::Type::Gauge, "h");
    out.sample({}, 1764648000.123);
    out.sample({}, 0.0);
    out.sample({}, 1.0 / 0.0);
    out.sample({}, -1.0 / 0.0);
    out.sample({}, 0.0 / 0.0);
    CHECK(out.text().ends_with("t 1764648000.123\nt 0.000\nt +Inf\nt -Inf\nt NaN\n"));
}

TEST_CASE("the content type is that of the text format 0.0.4")
{
    CHECK(Exposition::content_type == "text/plain; version=0.0.4; charset=utf-8");
}
