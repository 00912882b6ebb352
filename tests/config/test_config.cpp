#include "config/config.h"
#include "diagnostics_check.h"

#include <cstdio>
#include <doctest/doctest.h>
#include <fstream>
#include <unistd.h>

using namespace posta;
using namespace std::chrono_literals;

namespace {

Parsed<Config> parse(std::string_view text)
{
    return parse_config(text, "posta.toml");
}

bool has_error(Parsed<Config> const& parsed, int line, std::initializer_list<std::string_view> words)
{
    return has_error_in(parsed.errors, "posta.toml", line, words);
}

void check_defaults(Config const& c)
{
    CHECK(c.state_dir == "/var/lib/posta");
    CHECK(c.control_socket == "/run/posta/control.sock");
    CHECK(c.head_timeout == 10s);
    CHECK(c.body_timeout == 60s);
    CHECK(c.shutdown_timeout == 10s);
    CHECK(c.max_head_bytes == 16384);
    CHECK(c.max_body_bytes == 1048576);
    CHECK(c.max_page_bytes == 4194304);
    CHECK(c.max_pending == 64);
    CHECK(c.worker_open_files == 8192);
    CHECK(c.max_connections_per_address == 64);
    CHECK(c.delivery_retry_base == 30s);
    CHECK(c.delivery_retry_max == 6h);
    CHECK(c.delivery_give_up == 72h);
    CHECK(c.log_level == log::Level::Info);
    CHECK(c.log_format == log::Format::Text);
    CHECK(c.outbound_allow.empty());
    CHECK(c.outbound_ca_file.empty());
    CHECK(c.trusted_proxies.empty());
}

}

TEST_CASE("load_config with no path gives the documented defaults")
{
    auto parsed = load_config("");
    REQUIRE(parsed.ok());
    check_defaults(parsed.value);
}

TEST_CASE("an empty config file gives the documented defaults")
{
    auto parsed = parse("# nothing set\n");
    REQUIRE(parsed.ok());
    check_defaults(parsed.value);
}

TEST_CASE("every documented key is read")
{
    auto parsed = parse(R"(
state_dir           = "state"
control_socket      = "/tmp/posta.sock"
head_timeout        = "250ms"
body_timeout        = "90s"
shutdown_timeout    = "5m"
max_head_bytes      = 1024
max_body_bytes      = 1073741824
max_page_bytes      = 65536
max_pending         = 65536
worker_open_files   = 100000
max_connections_per_address = 8
delivery_retry_base = "1s"
delivery_retry_max  = "1h"
delivery_give_up    = "3d"
log_level           = "debug"
log_format          = "json"
outbound_allow      = ["127.0.0.0/8", "::1"]
outbound_ca_file    = "/etc/posta/private-ca.pem"
trusted_proxies     = ["127.0.0.1/32"]
)");
    REQUIRE(parsed.ok());
    Config const& c = parsed.value;
    CHECK(c.state_dir == "state");
    CHECK(c.control_socket == "/tmp/posta.sock");
    CHECK(c.head_timeout == 250ms);
    CHECK(c.body_timeout == 90s);
    CHECK(c.shutdown_timeout == 5min);
    CHECK(c.max_head_bytes == 1024);
    CHECK(c.max_body_bytes == 1073741824);
    CHECK(c.max_page_bytes == 65536);
    CHECK(c.max_pending == 65536);
    CHECK(c.worker_open_files == 100000);
    CHECK(c.max_connections_per_address == 8);
    CHECK(c.delivery_retry_base == 1s);
    CHECK(c.delivery_retry_max == 1h);
    CHECK(c.delivery_give_up == 72h);
    CHECK(c.log_level == log::Level::Debug);
    CHECK(c.log_format == log::Format::Json);
    REQUIRE(c.outbound_allow.size() == 2);
    CHECK(c.outbound_allow[0].text == "127.0.0.0/8");
    CHECK(c.outbound_allow[1].prefix == 128);
    CHECK(c.outbound_ca_file == "/etc/posta/private-ca.pem");
    REQUIRE(c.trusted_proxies.size() == 1);
    CHECK(c.trusted_proxies[0].text == "127.0.0.1/32");
}

TEST_CASE("a key that is not set keeps its default")
{
    auto parsed = parse("max_pending = 8\n");
    REQUIRE(parsed.ok());
    CHECK(parsed.value.max_pending == 8);
    CHECK(parsed.value.max_head_bytes == 16384);
    CHECK(parsed.value.head_timeout == 10s);
}

TEST_CASE("an unknown key is named at its line with the list of keys")
{
    auto parsed = parse("log_level = \"info\"\nlisten = \"127.0.0.1:8080\"\n[tls]\ncert = \"x\"\n");
    CHECK(parsed.errors.size() == 2);
    CHECK(has_error(parsed, 2, { "unknown key \"listen\"", "state_dir", "log_format", "posta-server(8)" }));
    CHECK(has_error(parsed, 3, { "unknown key \"tls\"" }));
}

TEST_CASE("a TOML syntax error in the config is reported at its line")
{
    auto parsed = parse("max_pending = 8\nhead_timeout = 10s\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 2, { "TOML syntax error" }));
}

TEST_CASE("bad durations are reported at their line with the accepted spellings")
{
    auto parsed = parse("head_timeout = \"10\"\nshutdown_timeout = \"0s\"\ndelivery_give_up = \"1.5h\"\n"
                        "delivery_retry_base = 30\ndelivery_retry_max = true\n");
    CHECK(parsed.errors.size() == 5);
    CHECK(has_error(parsed, 1, { "head_timeout = \"10\" is not a duration", "\"250ms\", \"10s\"" }));
    CHECK(has_error(parsed, 2, { "shutdown_timeout = \"0s\" is not a duration", "positive" }));
    CHECK(has_error(parsed, 3, { "delivery_give_up = \"1.5h\"" }));
    CHECK(has_error(parsed, 4, { "delivery_retry_base is a bare number", "\"10s\"" }));
    CHECK(has_error(parsed, 5, { "delivery_retry_max is a boolean", "must be a string" }));
}

TEST_CASE("numbers out of range are reported with the accepted range")
{
    auto parsed = parse("max_head_bytes = 1023\nmax_body_bytes = 1073741825\nmax_pending = 0\n");
    CHECK(parsed.errors.size() == 3);
    CHECK(has_error(parsed, 1, { "max_head_bytes = 1023 is out of range", "from 1024 to 65536" }));
    CHECK(has_error(parsed, 2, { "max_body_bytes = 1073741825", "from 1024 to 1073741824" }));
    CHECK(has_error(parsed, 3, { "max_pending = 0", "from 1 to 65536" }));

    auto more = parse("max_head_bytes = 65537\nmax_pending = -1\nmax_body_bytes = 1023\nworker_open_files = 63\n");
    CHECK(more.errors.size() == 4);
    CHECK(has_error(more, 1, { "max_head_bytes = 65537 is out of range", "from 1024 to 65536" }));
    CHECK(has_error(more, 2, { "max_pending = -1" }));
    CHECK(has_error(more, 4, { "worker_open_files = 63", "from 64 to 1048576" }));

    auto page = parse("log_level = \"info\"\nmax_page_bytes = 65535\n");
    CHECK(page.errors.size() == 1);
    CHECK(has_error(page, 2, { "max_page_bytes = 65535 is out of range", "from 65536 to 1073741824" }));
}

TEST_CASE("a bad body_timeout or max_connections_per_address is reported at its line")
{
    auto parsed = parse("body_timeout = 30\nmax_connections_per_address = 0\n");
    CHECK(parsed.errors.size() == 2);
    CHECK(has_error(parsed, 1, { "body_timeout is a bare number", "\"10s\"" }));
    CHECK(has_error(parsed, 2, { "max_connections_per_address = 0 is out of range", "from 1 to 1048576" }));
}

TEST_CASE("numbers given as strings or floats are wrong types")
{
    auto parsed = parse("max_head_bytes = \"16384\"\nmax_pending = 64.0\n");
    CHECK(parsed.errors.size() == 2);
    CHECK(has_error(parsed, 1, { "max_head_bytes is a string", "without quotes" }));
    CHECK(has_error(parsed, 2, { "max_pending is a float" }));
}

TEST_CASE("bad log levels and formats name the accepted values")
{
    auto parsed = parse("log_level = \"verbose\"\nlog_format = \"xml\"\n");
    CHECK(parsed.errors.size() == 2);
    CHECK(has_error(parsed, 1, { "\"verbose\" is not a level", "debug, info, warn or error" }));
    CHECK(has_error(parsed, 2, { "\"xml\" is not a format", "text or json" }));

    auto typed = parse("log_level = 1\n");
    CHECK(has_error(typed, 1, { "log_level is an integer" }));
}

TEST_CASE("paths must be non-empty strings and the control socket must fit sun_path")
{
    auto parsed = parse("state_dir = \"\"\ncontrol_socket = 5\n");
    CHECK(parsed.errors.size() == 2);
    CHECK(has_error(parsed, 1, { "state_dir is empty" }));
    CHECK(has_error(parsed, 2, { "control_socket is an integer" }));

    std::string long_path = "/" + std::string(120, 'x');
    auto too_long = parse("control_socket = \"" + long_path + "\"\n");
    REQUIRE(too_long.errors.size() == 1);
    CHECK(has_error(too_long, 1, { "control_socket is 121 bytes long", "at most 107" }));

    auto nul = parse("state_dir = \"/var/\\u0000x\"\n");
    CHECK(has_error(nul, 1, { "NUL" }));
}

TEST_CASE("a retry base longer than the retry maximum is an error")
{
    auto parsed = parse("\ndelivery_retry_max = \"20s\"\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 2, { "delivery_retry_base (30s) is longer than delivery_retry_max (20s)" }));

    auto both = parse("delivery_retry_base = \"2h\"\ndelivery_retry_max = \"1h\"\n");
    REQUIRE(both.errors.size() == 1);
    CHECK(has_error(both, 1, { "delivery_retry_base (2h)" }));

    auto equal = parse("delivery_retry_base = \"1h\"\ndelivery_retry_max = \"60m\"\n");
    CHECK(equal.ok());

    auto broken = parse("delivery_retry_max = \"1x\"\n");
    CHECK(broken.errors.size() == 1);
}

TEST_CASE("outbound_allow must be a list of networks, each bad entry reported at its line")
{
    auto parsed = parse("outbound_allow = \"127.0.0.0/8\"\n");
    CHECK(has_error(parsed, 1, { "outbound_allow", "list of networks", "[\"127.0.0.0/8\"" }));

    parsed = parse("outbound_allow = [\n  \"127.0.0.0/8\",\n  \"127.0.0.1/8\",\n  \"localhost\",\n  8,\n]\n");
    CHECK(parsed.errors.size() == 3);
    CHECK(has_error(parsed, 3, { "\"127.0.0.1/8\"", "first address" }));
    CHECK(has_error(parsed, 4, { "\"localhost\"", "not an IPv4 or IPv6" }));
    CHECK(has_error(parsed, 5, { "outbound_allow entry", "must be a string" }));
}

TEST_CASE("trusted_proxies is read like outbound_allow, errors at their lines")
{
    auto parsed = parse("trusted_proxies = \"127.0.0.1\"\n");
    CHECK(has_error(parsed, 1, { "trusted_proxies", "list of networks" }));

    parsed = parse("trusted_proxies = [\n  \"::1\",\n  \"front.local\",\n]\n");
    CHECK(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 3, { "trusted_proxies entry \"front.local\"", "not an IPv4 or IPv6" }));
}

TEST_CASE("every error of a config is collected, not just the first")
{
    auto parsed = parse("a = 1\nmax_pending = 0\nlog_format = \"yaml\"\nhead_timeout = \"soon\"\nb = 2\n");
    CHECK(parsed.errors.size() == 5);
    for (int line = 1; line <= 5; ++line)
        CHECK(has_error(parsed, line, {}));
}

TEST_CASE("load_config reads a file and reports an unreadable one at line 0")
{
    char path[] = "/tmp/posta-config-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    std::ofstream(path) << "max_pending = 9\n";
    auto parsed = load_config(path);
    std::remove(path);
    REQUIRE(parsed.ok());
    CHECK(parsed.value.max_pending == 9);

    auto missing = load_config("/nonexistent/posta.toml");
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].line == 0);
    CHECK(missing.errors[0].message.find("No such file or directory") != std::string::npos);
    CHECK(missing.errors[0].message.find("--config") != std::string::npos);
}

TEST_CASE("metrics_listen is off by default and must be a numeric address with a port")
{
    CHECK(parse("").value.metrics_listen.empty());
    auto good = parse("metrics_listen = \"127.0.0.1:9187\"\n");
    CHECK(good.ok());
    CHECK(good.value.metrics_listen == "127.0.0.1:9187");
    CHECK(parse("metrics_listen = \"[::1]:9187\"\n").ok());

    auto parsed = parse("log_level = \"info\"\nmetrics_listen = \"localhost:9187\"\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 2, { "metrics_listen = \"localhost:9187\"", "numeric IPv4 address", "127.0.0.1:9187" }));
    CHECK(has_error(parse("metrics_listen = \"127.0.0.1\"\n"), 1, { "needs a port" }));
    CHECK(has_error(parse("metrics_listen = 9187\n"), 1, { "metrics_listen is an integer" }));
}
