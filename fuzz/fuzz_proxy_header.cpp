// Fuzz target: the PROXY header reader, which reads a trusted front's first
// bytes before anything else does. The input is the start of a connection.
// Every prefix must agree with the whole: a header decided on fewer bytes
// stays decided, a complete one is NeedMore on each shorter prefix (the
// supervisor consumes NeedMore bytes as the header's), and its length never
// passes the bytes seen or the bound.
#include "fuzz_invariant.h"
#include "supervisor/proxy_header.h"

#include <cstdint>
#include <netinet/in.h>
#include <string_view>

using namespace posta;
using posta::fuzz::require;
using State = ProxyHeader::State;

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view input(reinterpret_cast<char const*>(data), size);
    ProxyHeader whole = read_proxy_header(input);

    if (has_proxy_signature(input))
        require(whole.state != State::Absent, "a whole signature read as no header");
    if (whole.state == State::Complete) {
        require(whole.length > 0 && whole.length <= input.size(), "a header longer than the bytes seen");
        require(whole.length <= max_proxy_header_bytes, "a header longer than the bound");
        if (whole.source) {
            int family = whole.source->storage.ss_family;
            require((family == AF_INET && whole.source->length == sizeof(sockaddr_in))
                    || (family == AF_INET6 && whole.source->length == sizeof(sockaddr_in6)),
                "a source that is not a TCP address");
        }
    }

    // Past the bound nothing changes the answer; check the prefixes up to it.
    size_t last = size < max_proxy_header_bytes + 1 ? size : max_proxy_header_bytes + 1;
    for (size_t n = 0; n < last; ++n) {
        ProxyHeader part = read_proxy_header(input.substr(0, n));
        switch (whole.state) {
        case State::Complete:
            if (n < whole.length) {
                require(part.state == State::NeedMore, "a prefix of a complete header is not NeedMore");
            } else {
                require(part.state == State::Complete && part.length == whole.length,
                    "a complete header and a longer prefix disagree");
                require(part.source.has_value() == whole.source.has_value(), "the source changed with more bytes");
            }
            break;
        case State::Absent:
            require(part.state == State::NeedMore || part.state == State::Absent,
                "a prefix of no header is a header");
            break;
        case State::Malformed:
            require(part.state == State::NeedMore || part.state == State::Malformed,
                "a prefix of a malformed header is complete or absent");
            break;
        case State::NeedMore:
            require(part.state == State::NeedMore, "a prefix of an undecided header is decided");
            break;
        }
    }
    return 0;
}
