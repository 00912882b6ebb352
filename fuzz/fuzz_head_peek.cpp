// Fuzz target: the supervisor's head peek and Host reduction, the first code
// that reads a stranger's bytes. The input is the start of a connection. It
// is fed as Supervisor::on_connection does (the whole peek at once) and as
// the slow path does (a byte at a time); both must agree. A Host that
// reduces to a key must be a fixed point of the reduction and reachable from
// a manifest URL, or a request could never (or wrongly) reach an identity.
#include "common/host_key.h"
#include "fuzz_invariant.h"
#include "supervisor/head_peek.h"

#include <cstdint>
#include <string>
#include <string_view>

using namespace posta;
using posta::fuzz::fail;

namespace {

// Small, so that TooLarge is reachable with the inputs a fuzzer writes.
constexpr size_t max_head_bytes = 512;

void check_host_key(std::string_view host)
{
    auto key = host_key_from_header(host);
    if (!key)
        return;
    if (key->empty())
        fail("an accepted Host reduced to an empty key");
    for (char c : *key) {
        if (c >= 'A' && c <= 'Z')
            fail("a host key has an upper-case letter");
    }
    if (key->back() == '.')
        fail("a host key ends with a dot");
    auto again = host_key_from_header(*key);
    if (!again || *again != *key)
        fail("a host key is not a fixed point of host_key_from_header");
    auto url = parse_identity_url("http://" + *key);
    if (!url || url->host_key != *key)
        fail("a host key cannot be written as a manifest URL with the same key");
}

}

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view input(reinterpret_cast<char const*>(data), size);

    HeadPeek whole(max_head_bytes);
    HeadPeek::State state = whole.feed(input);

    HeadPeek split(max_head_bytes);
    HeadPeek::State split_state = HeadPeek::State::NeedMore;
    for (size_t i = 0; i < input.size() && split_state == HeadPeek::State::NeedMore; ++i)
        split_state = split.feed(input.substr(i, 1));

    if (state != split_state)
        fail("the same bytes whole and split give different states");
    if (state == HeadPeek::State::Complete) {
        if (whole.host() != split.host() || whole.host_count() != split.host_count())
            fail("the same head whole and split gives different Hosts");
        (void)whole.host_required();
        if (whole.host_count() == 1)
            check_host_key(whole.host());
    }

    // Host values llhttp would never pass on still reach the reduction
    // through other callers (the worker's 421 check); try the raw bytes too.
    check_host_key(input);

    // A reset parser must behave as a new one.
    whole.reset();
    if (whole.feed(input) != state)
        fail("a reset HeadPeek gives another state");
    return 0;
}
