// ClientHello reader: what the supervisor learns from the first bytes of a
// connection on a TLS listener, without OpenSSL and without answering
// anything: whether they are a TLS ClientHello, and the host name of its
// server_name extension (SNI), by which the connection is routed. Pure: it
// reads the bytes it is given, keeps nothing and allocates nothing.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace posta {

struct ClientHelloPeek {
    enum class State {
        NeedMore,       // a well-formed start; the rest of the ClientHello is still to come
        ServerName,     // a whole ClientHello with a host_name in server_name
        NoServerName,   // a whole ClientHello without one
        NotClientHello, // not TLS, not a ClientHello, or a malformed one
        TooLarge,       // the ClientHello would not fit in the bound
    };

    State state = State::NeedMore;
    // NotClientHello: what was wrong, for a debug log line (static text).
    char const* reason = "";
    // ServerName: the host name as sent (case kept), held here so that a
    // name split across two records needs no allocation. Only letters,
    // digits, '-', '_' and '.', neither first nor last a dot (RFC 6066,
    // section 3: a DNS host name, no trailing dot).
    std::array<char, 255> name_buffer {};
    size_t name_length = 0;

    std::string_view server_name() const { return { name_buffer.data(), name_length }; }
};

// Reads the start of a connection, `bytes` being everything received so far
// (from its first byte). The ClientHello may span several TLS records and
// arrive over several reads: call again with more bytes on NeedMore. Records
// whose fragments would end past `max_bytes` give TooLarge: the caller never
// needs to hold more than `max_bytes` of a stranger's bytes.
// Refs: RFC 8446 sections 4.1.2 and 5.1, RFC 5246 section 6.2.1, RFC 6066
// section 3.
ClientHelloPeek read_client_hello(std::string_view bytes, size_t max_bytes);

}
