// Policy's channel form: what the supervisor sends every worker at start and
// after a reload comes back whole, the reloadable config keys included, and
// what the reader did not write is refused.
#include "ipc/policy.h"

#include <doctest/doctest.h>

#include <string>

using namespace posta;

namespace {

Policy unusual_policy()
{
    Policy policy;
    policy.rate_per_minute = 7;
    policy.acl.allow = { "*.example" };
    policy.acl.deny = { "http://mallory.example" };
    policy.trusted_proxies = { parse_address_range("127.0.0.1/32").value(), parse_address_range("::1").value() };
    policy.max_head_bytes = 40000;
    policy.head_timeout = std::chrono::milliseconds(1500);
    policy.body_timeout = std::chrono::milliseconds(2500);
    policy.max_connections_per_address = 9;
    policy.log_level = log::Level::Debug;
    policy.log_format = log::Format::Json;
    return policy;
}

}

TEST_CASE("a policy with ACL, rate, trusted proxies and the reloadable limits survives its channel form")
{
    Policy policy = unusual_policy();
    auto back = Policy::deserialize(policy.serialize());
    REQUIRE(back);
    CHECK(back->rate_per_minute == 7);
    CHECK(back->acl.allow == policy.acl.allow);
    CHECK(back->acl.deny == policy.acl.deny);
    REQUIRE(back->trusted_proxies.size() == 2);
    CHECK(back->trusted_proxies[0].text == "127.0.0.1/32");
    CHECK(back->trusted_proxies[1].prefix == 128);
    CHECK(back->max_head_bytes == 40000);
    CHECK(back->head_timeout == std::chrono::milliseconds(1500));
    CHECK(back->body_timeout == std::chrono::milliseconds(2500));
    CHECK(back->max_connections_per_address == 9);
    CHECK(back->log_level == log::Level::Debug);
    CHECK(back->log_format == log::Format::Json);
    CHECK(back->serialize() == policy.serialize());
}

TEST_CASE("a policy takes the reloadable keys from a config and keeps its ACL and rate")
{
    Config config;
    config.trusted_proxies = { parse_address_range("127.0.0.9").value() };
    config.max_head_bytes = 30000;
    config.head_timeout = std::chrono::seconds(2);
    config.body_timeout = std::chrono::seconds(3);
    config.max_connections_per_address = 4;
    config.log_level = log::Level::Warn;
    config.log_format = log::Format::Json;
    Policy policy = unusual_policy();
    policy.take_config(config);
    CHECK(policy.rate_per_minute == 7);
    CHECK(policy.acl.allow == std::vector<std::string> { "*.example" });
    REQUIRE(policy.trusted_proxies.size() == 1);
    CHECK(policy.trusted_proxies[0].text == "127.0.0.9");
    CHECK(policy.max_head_bytes == 30000);
    CHECK(policy.head_timeout == std::chrono::seconds(2));
    CHECK(policy.body_timeout == std::chrono::seconds(3));
    CHECK(policy.max_connections_per_address == 4);
    CHECK(policy.log_level == log::Level::Warn);
    CHECK(policy.log_format == log::Format::Json);
}

TEST_CASE("a policy with a bad trusted range is refused")
{
    std::string text = Policy().serialize();
    CHECK(Policy::deserialize(text));
    CHECK_FALSE(Policy::deserialize(text + "trust front.local\n"));
}

TEST_CASE("a policy missing a field, repeating one or out of range is refused")
{
    std::string text = unusual_policy().serialize();
    for (char const* key : { "rate ", "max_head_bytes ", "head_timeout ", "body_timeout ",
             "max_connections_per_address ", "log_level ", "log_format " }) {
        CAPTURE(key);
        size_t at = text.find(key);
        REQUIRE(at != std::string::npos);
        std::string line = text.substr(at, text.find('\n', at) - at + 1);
        std::string without = text;
        without.erase(at, line.size());
        CHECK_FALSE(Policy::deserialize(without));
        CHECK_FALSE(Policy::deserialize(text + line));
    }
    std::string level = text;
    level.replace(level.find("log_level 0"), 11, "log_level 9");
    CHECK_FALSE(Policy::deserialize(level));
    std::string timeout = text;
    timeout.replace(timeout.find("head_timeout 1500"), 17, "head_timeout -1");
    CHECK_FALSE(Policy::deserialize(timeout));
    CHECK_FALSE(Policy::deserialize(text + "max_pending 3\n"));
    CHECK_FALSE(Policy::deserialize(text.substr(0, text.size() - 1)));
}
