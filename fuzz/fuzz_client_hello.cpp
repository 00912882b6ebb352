// Fuzz target: the ClientHello reader, the first code that reads a stranger's
// bytes on a TLS listener. The input is the start of a connection. Reading
// is judged on the whole input and on prefixes of it, as the slow path sees
// a hello arrive: a prefix may only need more or reach the verdict the whole
// gives. A host name found must reduce, if at all, to itself in lower case:
// routing by SNI must never drop a port or rewrite the name.
#include "common/host_key.h"
#include "fuzz_invariant.h"
#include "supervisor/client_hello.h"

#include <cstdint>
#include <string_view>

using namespace posta;
using posta::fuzz::fail;
using State = ClientHelloPeek::State;

namespace {

// Small, so that TooLarge is reachable with the inputs a fuzzer writes.
constexpr size_t max_bytes = 1024;

bool final_state(State state) { return state != State::NeedMore; }

}

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view input(reinterpret_cast<char const*>(data), size);
    ClientHelloPeek whole = read_client_hello(input, max_bytes);

    if (whole.state == State::ServerName) {
        std::string_view name = whole.server_name();
        if (name.empty() || name.size() > 255)
            fail("a server name empty or longer than 255 bytes");
        // Names the reduction refuses (an underscore, a long label, a
        // numeric last label) are for no identity: the supervisor answers
        // unrecognized_name.
        if (auto key = host_key_from_header(name)) {
            if (key->size() != name.size())
                fail("a server name reduced to a key of another length");
            for (size_t i = 0; i < name.size(); ++i) {
                char c = name[i] >= 'A' && name[i] <= 'Z' ? static_cast<char>(name[i] - 'A' + 'a') : name[i];
                if ((*key)[i] != c)
                    fail("a server name reduced to another key than its lower case");
            }
        }
    } else if (whole.name_length != 0) {
        fail("a server name left behind without the ServerName state");
    }
    if (whole.state == State::NotClientHello && *whole.reason == '\0')
        fail("NotClientHello without a reason");

    // Prefixes: at most 64 of them, spread over the input, and every one of
    // a short input.
    size_t step = size / 64 + 1;
    for (size_t length = 0; length < size; length += step) {
        ClientHelloPeek part = read_client_hello(input.substr(0, length), max_bytes);
        if (!final_state(part.state))
            continue;
        if (part.state != whole.state)
            fail("a prefix reached another verdict than the whole input");
        if (part.server_name() != whole.server_name())
            fail("a prefix found another server name than the whole input");
    }

    // A larger bound never turns a verdict reached within the smaller one.
    if (whole.state != State::TooLarge && final_state(whole.state)) {
        ClientHelloPeek larger = read_client_hello(input, max_bytes * 4);
        if (larger.state != whole.state || larger.server_name() != whole.server_name())
            fail("a larger bound changed a verdict");
    }
    return 0;
}
