// TcpTransport: a Transport over one connected socket, on libuv (uv_tcp_t).
// It owns the socket from open() on and closes it in close(); its memory
// must outlive the close callback, so its owner frees it only from
// on_transport_closed.
#pragma once

#include "common/unique_fd.h"
#include "http/transport.h"

#include <uv.h>
#include <vector>

namespace posta {

class TcpTransport final : public Transport {
public:
    // `read_buffer` is what libuv reads into; the bytes are handed to
    // `events` at once, so one buffer may serve every transport of a loop.
    TcpTransport(uv_loop_t*, std::vector<char>& read_buffer, TransportEvents&);
    TcpTransport(TcpTransport const&) = delete;
    TcpTransport& operator=(TcpTransport const&) = delete;

    // Takes the socket. On failure `fd` still owns it (and closes it), and the
    // transport must still be closed.
    Result<void> open(UniqueFd& fd);

    Result<void> start_reading() override;
    void stop_reading() override;
    Result<Written> write(std::string bytes) override;
    Result<void> shutdown() override;
    size_t queued_bytes() const override;
    bool peer_sent_more() const override;
    void close() override;

private:
    struct WriteRequest;

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&m_tcp); }
    uv_stream_t const* stream() const { return reinterpret_cast<uv_stream_t const*>(&m_tcp); }

    static void alloc_cb(uv_handle_t*, size_t, uv_buf_t*) noexcept;
    static void read_cb(uv_stream_t*, ssize_t, uv_buf_t const*) noexcept;
    static void write_cb(uv_write_t*, int) noexcept;
    static void shutdown_cb(uv_shutdown_t*, int) noexcept;
    static void close_cb(uv_handle_t*) noexcept;

    std::vector<char>& m_read_buffer;
    TransportEvents& m_events;
    uv_tcp_t m_tcp {};
    uv_shutdown_t m_shutdown {};
    bool m_reading = false;
    bool m_closing = false;
};

}
