// The few answers the supervisor gives itself, before a connection reaches a
// worker: 400, 404, 408, 431, 503, each a small JSON error with
// `Connection: close`; and on a TLS listener, where it cannot speak HTTP,
// two fixed fatal TLS alert records. Each is written without blocking, after
// which the connection is closed. The supervisor never speaks to a
// connection it has passed on.
#pragma once

#include "ipc/channel.h"
#include "common/unique_fd.h"

#include <cstdint>

namespace posta {

enum class Reply {
    BadRequest,       // 400: malformed head, or HTTP/1.1 without Host
    NotFound,         // 404: no identity at this host
    RequestTimeout,   // 408: head not complete within head_timeout
    HeadTooLarge,     // 431: head over max_head_bytes
    Unavailable,      // 503: the identity's worker is not ready
    // TLS alerts (RFC 8446, 6.2), in a plaintext record as before any
    // handshake: no identity for the ClientHello's SNI, or none sent...
    TlsUnrecognizedName,
    // ...and the identity's worker is not ready (TLS has no "retry later").
    TlsInternalError,
};

// What a connection of `kind` gets when its identity cannot take it now.
inline Reply unavailable_reply(ConnectionKind kind)
{
    return kind == ConnectionKind::Tls ? Reply::TlsInternalError : Reply::Unavailable;
}

// Every Reply, in enum order, for those that list them.
inline constexpr Reply all_replies[] = { Reply::BadRequest, Reply::NotFound, Reply::RequestTimeout, Reply::HeadTooLarge,
    Reply::Unavailable, Reply::TlsUnrecognizedName, Reply::TlsInternalError };

// How many times this process gave `reply` (the metrics endpoint's count;
// the supervisor is single-threaded).
uint64_t reply_count(Reply);

// Drains what the client already sent (so closing does not turn into a
// reset that destroys the answer in flight), writes the reply if the socket
// takes it at once, and closes the connection.
void reply_and_close(UniqueFd connection, Reply);

}
