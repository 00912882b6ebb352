// WorkerStart, the first message of a worker's channel: every field of the
// identity, the config and the policy arrives as sent, and what the reader
// did not write is refused.
#include "ipc/worker_start.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

WorkerStart unusual_start()
{
    WorkerStart start;
    start.identity = { "arne", "http://arne.test:8080", "Arne\nwith a newline", "arne.test:8080", 7 };
    Config& c = start.config;
    c.state_dir = "/srv/posta state";
    c.control_socket = "/run/x/control.sock";
    c.metrics_listen = "127.0.0.1:9187";
    c.head_timeout = std::chrono::milliseconds(1234);
    c.body_timeout = std::chrono::milliseconds(4321);
    c.shutdown_timeout = std::chrono::seconds(3);
    c.max_head_bytes = 5000;
    c.max_body_bytes = 6000;
    c.max_page_bytes = 6500;
    c.max_pending = 7;
    c.worker_open_files = 99;
    c.max_connections_per_address = 11;
    c.outbound_allow = { parse_address_range("127.0.0.0/8").value(), parse_address_range("::1").value() };
    c.trusted_proxies = { parse_address_range("127.0.0.2").value() };
    c.outbound_ca_file = "/etc/posta/private-ca.pem";
    c.delivery_retry_base = std::chrono::seconds(5);
    c.delivery_retry_max = std::chrono::minutes(7);
    c.delivery_give_up = std::chrono::hours(9);
    c.log_level = log::Level::Debug;
    c.log_format = log::Format::Json;
    c.sandbox = false;
    start.policy.rate_per_minute = 3;
    start.policy.acl.allow = { "*.example" };
    start.policy.acl.deny = { "http://bad.example" };
    start.supervisor = 4242;
    return start;
}

}

TEST_CASE("a worker start carries every field of the identity, the config and the policy")
{
    WorkerStart sent = unusual_start();
    auto got = WorkerStart::deserialize(sent.serialize());
    REQUIRE_MESSAGE(got.ok(), got.error().text());
    CHECK(got->identity.slug == "arne");
    CHECK(got->identity.url == sent.identity.url);
    CHECK(got->identity.name == sent.identity.name);
    CHECK(got->identity.host_key == sent.identity.host_key);
    CHECK(got->identity.line == 7);
    Config const& c = got->config;
    CHECK(c.state_dir == sent.config.state_dir);
    CHECK(c.control_socket == sent.config.control_socket);
    CHECK(c.metrics_listen == sent.config.metrics_listen);
    CHECK(c.head_timeout == sent.config.head_timeout);
    CHECK(c.body_timeout == sent.config.body_timeout);
    CHECK(c.shutdown_timeout == sent.config.shutdown_timeout);
    CHECK(c.max_head_bytes == 5000);
    CHECK(c.max_body_bytes == 6000);
    CHECK(c.max_page_bytes == 6500);
    CHECK(c.max_pending == 7);
    CHECK(c.worker_open_files == 99);
    CHECK(c.max_connections_per_address == 11);
    REQUIRE(c.outbound_allow.size() == 2);
    CHECK(c.outbound_allow[0].text == "127.0.0.0/8");
    CHECK(c.outbound_allow[1].contains(sent.config.outbound_allow[1].network));
    CHECK(!c.outbound_allow[1].contains(sent.config.outbound_allow[0].network));
    REQUIRE(c.trusted_proxies.size() == 1);
    CHECK(c.trusted_proxies[0].text == "127.0.0.2");
    CHECK(c.outbound_ca_file == "/etc/posta/private-ca.pem");
    CHECK(c.delivery_retry_base == sent.config.delivery_retry_base);
    CHECK(c.delivery_retry_max == sent.config.delivery_retry_max);
    CHECK(c.delivery_give_up == sent.config.delivery_give_up);
    CHECK(c.log_level == log::Level::Debug);
    CHECK(c.log_format == log::Format::Json);
    CHECK(c.sandbox == false);
    CHECK(got->policy.rate_per_minute == 3);
    CHECK(got->policy.acl.allow == sent.policy.acl.allow);
    CHECK(got->policy.acl.deny == sent.policy.acl.deny);
    CHECK(got->supervisor == 4242);
}

TEST_CASE("a worker start that is cut, padded or altered is refused")
{
    std::string text = unusual_start().serialize();
    CHECK(!WorkerStart::deserialize(text.substr(0, text.size() - 1)).ok());
    CHECK(!WorkerStart::deserialize(text + "x").ok());
    CHECK(!WorkerStart::deserialize("").ok());
    std::string renamed = text;
    renamed.replace(renamed.find("max_pending"), 11, "max_pendinG");
    CHECK(!WorkerStart::deserialize(renamed).ok());
    std::string level = text;
    level.replace(level.find("log_level 1\n0"), 13, "log_level 1\n9");
    CHECK(!WorkerStart::deserialize(level).ok());
}
