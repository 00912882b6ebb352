// Fuzz target: the sender ACL (parse_acl, Acl::admits) and the policy text
// that carries it to workers (Policy::serialize/deserialize). The input is
// the ACL file; its last line, when it has one, is also tried as a sender
// URL. An accepted ACL must survive the trip to a worker unchanged, and must
// admit or refuse a sender the same way on both sides of the trip.
#include "config/acl.h"
#include "ipc/policy.h"
#include "fuzz_invariant.h"

#include <cstdint>
#include <string>
#include <string_view>

using namespace posta;
using posta::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view input(reinterpret_cast<char const*>(data), size);

    auto parsed = parse_acl(input, "fuzz.toml");
    for (Diagnostic const& d : parsed.errors) {
        require(d.line >= 0, "a diagnostic has a negative line");
        require(!d.message.empty(), "a diagnostic has no message");
    }

    std::string_view sender = input.substr(input.rfind('\n') == std::string_view::npos ? 0 : input.rfind('\n') + 1);
    Acl const& acl = parsed.value;
    bool admitted = acl.admits(sender);
    if (!parsed.ok())
        return 0;

    Policy policy;
    policy.acl = acl;
    policy.rate_per_minute = static_cast<unsigned>(size);
    auto received = Policy::deserialize(policy.serialize());
    require(received.ok(), "a serialized policy does not deserialize");
    require(received->rate_per_minute == policy.rate_per_minute, "the rate changes on the way to a worker");
    require(received->acl.allow == acl.allow && received->acl.deny == acl.deny, "the ACL changes on the way to a worker");
    require(received->acl.admits(sender) == admitted, "a worker decides a sender differently from the supervisor's ACL");
    for (std::string const& pattern : acl.deny) {
        if (!pattern.starts_with("*."))
            require(!acl.admits(pattern), "a denied URL is admitted");
    }
    return 0;
}
