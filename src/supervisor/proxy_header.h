// ProxyHeader: the supervisor's reader of a PROXY protocol header (HAProxy's
// doc/proxy-protocol.txt, version 1 text and version 2 binary), which a
// trusted front puts before everything else on a connection to say whose it
// is. Pure: it looks at the first bytes of a connection, owns nothing and
// touches no socket; the supervisor consumes exactly `length` bytes once the
// header is complete, so what follows (a request head, a ClientHello) stays
// as the client sent it.
#pragma once

#include "common/address.h"

#include <cstddef>
#include <optional>
#include <string_view>

namespace posta {

// The longest header read: version 1 is at most 107 bytes by its spec;
// a version 2 header with more TLVs than this is refused (HAProxy's
// send-proxy-v2 sends well under 300 bytes).
inline constexpr size_t max_proxy_header_bytes = 2048;

struct ProxyHeader {
    enum class State {
        Absent,    // the bytes do not begin a PROXY header
        NeedMore,  // a header's beginning; every byte so far belongs to it
        Complete,  // a whole header: `length` and `source` are set
        Malformed, // a PROXY signature followed by what the spec does not allow
    };

    State state = State::Absent;
    size_t length = 0; // Complete: the header's bytes, at most max_proxy_header_bytes
    // Complete: the client the front speaks for; nullopt when the header
    // names none (v1 UNKNOWN, v2 LOCAL, v2 UNSPEC or UNIX), and the
    // connection's own address stands.
    std::optional<SocketAddress> source;
    char const* error = ""; // Malformed: why, for a debug line
};

// Reads a header from the start of `bytes`, the first bytes of a connection
// (the whole of what arrived so far). Bytes after the header are not looked
// at. Whatever `bytes` holds, the answer for a longer `bytes` with the same
// beginning is the same or follows from it: NeedMore until the header is
// decided, never Absent after NeedMore unless the bytes stopped matching a
// signature (so a caller that consumed NeedMore bytes keeps them).
ProxyHeader read_proxy_header(std::string_view bytes);

// Whether `bytes` begin with a whole v1 or v2 signature: what a connection
// from an address that is not a trusted proxy is refused for.
bool has_proxy_signature(std::string_view bytes);

}
