// Policy's channel form: what the supervisor sends every worker after a
// reload comes back whole, trusted proxies included.
#include "common/policy.h"

#include <doctest/doctest.h>

using namespace posta;

TEST_CASE("a policy with ACL, rate and trusted proxies survives its channel form")
{
    Policy policy;
    policy.rate_per_minute = 7;
    policy.acl.allow = { "*.example" };
    policy.acl.deny = { "http://mallory.example" };
    policy.trusted_proxies = { parse_address_range("127.0.0.1/32").value(), parse_address_range("::1").value() };

    auto back = Policy::deserialize(policy.serialize());
    REQUIRE(back);
    CHECK(back->rate_per_minute == 7);
    CHECK(back->acl.allow == policy.acl.allow);
    CHECK(back->acl.deny == policy.acl.deny);
    REQUIRE(back->trusted_proxies.size() == 2);
    CHECK(back->trusted_proxies[0].text == "127.0.0.1/32");
    CHECK(back->trusted_proxies[1].prefix == 128);
}

TEST_CASE("a policy with a bad trusted range is refused")
{
    CHECK_FALSE(Policy::deserialize("rate 1\ntrust front.local\n"));
}
