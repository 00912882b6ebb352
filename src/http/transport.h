// Transport: the byte stream under an HttpSession. The session reads,
// writes, shuts down and closes only through it and hears back through
// TransportEvents; it never touches the socket. TcpTransport (a plain socket,
// tcp_transport.h) is one; TlsTransport (tls_transport.h) sits in the same
// place, layered over a TcpTransport, with the session unchanged.
#pragma once

#include "common/result.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace posta {

// What a transport tells its owner, always from a loop callback, never from
// inside a call the owner made.
class TransportEvents {
public:
    virtual ~TransportEvents() = default;
    // Bytes from the peer; valid only during the call.
    virtual void on_transport_read(std::string_view bytes) = 0;
    // The peer finished sending (status UV_EOF) or reading failed (a libuv
    // error). Reading has stopped.
    virtual void on_transport_read_end(int status) = 0;
    // One write() of `bytes` bytes that answered Written::Queued is done
    // (status 0) or failed or was cancelled by close() (a libuv error).
    // Always before on_transport_closed.
    virtual void on_transport_written(size_t bytes, int status) = 0;
    // The shutdown() asked for is done, or failed (status < 0).
    virtual void on_transport_shut_down(int status) = 0;
    // close() has finished: the transport will call nothing more, and its
    // owner may free it now (this is its last callback).
    virtual void on_transport_closed() = 0;
};

class Transport {
public:
    virtual ~Transport() = default;

    // Reading is off until started; both are idempotent.
    virtual Result<void> start_reading() = 0;
    virtual void stop_reading() = 0;
    // Writes `bytes` behind earlier writes. Written::Done: the kernel took
    // them all at once, and no on_transport_written follows (the common case
    // for an answer: no write request, no callback, no change of what the
    // loop watches). Written::Queued: one on_transport_written follows, for
    // all of `bytes`. On failure none follows (libuv's rule).
    enum class Written { Done, Queued };
    virtual Result<Written> write(std::string bytes) = 0;
    // Ends the sending side once every queued write is done.
    virtual Result<void> shutdown() = 0;
    // Bytes written that the kernel has not taken yet.
    virtual size_t queued_bytes() const = 0;
    // Whether the peer sent bytes that have not been read (a pipelined
    // request behind the last answer): closing now would reset them.
    virtual bool peer_sent_more() const = 0;
    // Closes at once; pending writes are cancelled. on_transport_closed
    // follows once. Calls after close() do nothing.
    virtual void close() = 0;
};

}
