#include "tcp_transport.h"

#include "common/uv_handle.h"

#include <cerrno>
#include <sys/socket.h>

namespace posta {

struct TcpTransport::WriteRequest {
    uv_write_t req {};
    std::string bytes; // all of them, the first ones possibly taken by uv_try_write
    TcpTransport* transport = nullptr;
};

TcpTransport::TcpTransport(uv_loop_t* loop, std::vector<char>& read_buffer, TransportEvents& events)
    : m_read_buffer(read_buffer)
    , m_events(events)
{
    uv_tcp_init(loop, &m_tcp); // cannot fail without a domain
    m_tcp.data = this;
}

Result<void> TcpTransport::open(UniqueFd& fd)
{
    if (int rc = uv_tcp_open(&m_tcp, fd.get()); rc < 0)
        return uv_error(rc, "uv_tcp_open");
    fd.release(); // the handle owns the socket now; uv_close closes it
    // Answers are small and come in bursts; do not let Nagle hold them back.
    uv_tcp_nodelay(&m_tcp, 1);
    return {};
}

Result<void> TcpTransport::start_reading()
{
    if (m_reading || m_closing)
        return {};
    if (int rc = uv_read_start(stream(), alloc_cb, read_cb); rc < 0)
        return uv_error(rc, "uv_read_start");
    m_reading = true;
    return {};
}

void TcpTransport::stop_reading()
{
    if (!m_reading || m_closing)
        return;
    uv_read_stop(stream());
    m_reading = false;
}

Result<Transport::Written> TcpTransport::write(std::string bytes)
{
    if (m_closing)
        return uv_error(UV_ECANCELED, "uv_write");
    // libuv refuses (UV_EAGAIN) while earlier writes wait, so bytes never
    // overtake each other.
    uv_buf_t all = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
    int sent = uv_try_write(stream(), &all, 1);
    if (sent < 0 && sent != UV_EAGAIN)
        return uv_error(sent, "uv_try_write");
    size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
    if (done == bytes.size())
        return Written::Done;
    auto* write = new WriteRequest;
    write->bytes = std::move(bytes);
    write->transport = this;
    write->req.data = write;
    uv_buf_t buf = uv_buf_init(write->bytes.data() + done, static_cast<unsigned>(write->bytes.size() - done));
    if (int rc = uv_write(&write->req, stream(), &buf, 1, write_cb); rc < 0) {
        delete write; // a function that fails never calls its callback (libuv)
        return uv_error(rc, "uv_write");
    }
    return Written::Queued;
}

Result<void> TcpTransport::shutdown()
{
    if (m_closing)
        return uv_error(UV_ECANCELED, "uv_shutdown");
    if (int rc = uv_shutdown(&m_shutdown, stream(), shutdown_cb); rc < 0)
        return uv_error(rc, "uv_shutdown");
    return {};
}

size_t TcpTransport::queued_bytes() const
{
    // What libuv could not hand to the kernel yet; bytes the kernel took but
    // whose write callback is still to run do not count as a backlog.
    return uv_stream_get_write_queue_size(stream());
}

bool TcpTransport::peer_sent_more() const
{
    uv_os_fd_t fd = -1;
    if (uv_fileno(reinterpret_cast<uv_handle_t const*>(&m_tcp), &fd) < 0)
        return true;
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

void TcpTransport::close()
{
    if (m_closing)
        return;
    m_closing = true;
    m_reading = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&m_tcp), close_cb);
}

// ---- libuv trampolines ----

void TcpTransport::alloc_cb(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept
{
    auto& buffer = static_cast<TcpTransport*>(handle->data)->m_read_buffer;
    *buf = uv_buf_init(buffer.data(), static_cast<unsigned>(buffer.size()));
}

void TcpTransport::read_cb(uv_stream_t* stream, ssize_t nread, uv_buf_t const* buf) noexcept
{
    auto* self = static_cast<TcpTransport*>(stream->data);
    if (nread == 0 || self->m_closing)
        return;
    if (nread < 0) {
        // libuv stops reading by itself at EOF; say so for an error too.
        self->stop_reading();
        self->m_events.on_transport_read_end(static_cast<int>(nread));
        return;
    }
    self->m_events.on_transport_read(std::string_view(buf->base, static_cast<size_t>(nread)));
}

void TcpTransport::write_cb(uv_write_t* req, int status) noexcept
{
    auto* write = static_cast<WriteRequest*>(req->data);
    TcpTransport* self = write->transport;
    size_t bytes = write->bytes.size();
    delete write;
    // Write callbacks run before the close callback, so the transport is alive.
    self->m_events.on_transport_written(bytes, status);
}

void TcpTransport::shutdown_cb(uv_shutdown_t* req, int status) noexcept
{
    static_cast<TcpTransport*>(req->handle->data)->m_events.on_transport_shut_down(status);
}

void TcpTransport::close_cb(uv_handle_t* handle) noexcept
{
    // The owner may free the transport in this call; nothing touches it after.
    static_cast<TcpTransport*>(handle->data)->m_events.on_transport_closed();
}

}
