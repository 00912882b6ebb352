#include "tls_transport.h"

#include "common/log.h"
#include "common/uv_handle.h"
#include "http/openssl_error.h"

namespace posta {

namespace {

// Ciphertext held in OpenSSL beyond which the socket is not read until the
// session takes plaintext: one read's worth, as over TcpTransport.
constexpr size_t max_buffered_ciphertext = 64 * 1024;

}

TlsTransport::TlsTransport(uv_loop_t* loop, std::vector<char>& read_buffer, TransportEvents& events, SSL_CTX* ctx)
    : m_events(events)
    , m_read_buffer(read_buffer)
    , m_tcp(loop, read_buffer, static_cast<TransportEvents&>(*this))
{
    uv_timer_init(loop, &m_resume); // cannot fail on Unix
    m_resume.data = this;
    m_ssl = SSL_new(ctx);
    m_in = BIO_new(BIO_s_mem());
    m_out = BIO_new(BIO_s_mem());
    if (m_ssl && m_in && m_out) {
        // An empty input BIO means "more to come", not EOF.
        BIO_set_mem_eof_return(m_in, -1);
        SSL_set_bio(m_ssl, m_in, m_out);
        SSL_set_accept_state(m_ssl);
    } else {
        BIO_free(m_in);
        BIO_free(m_out);
        m_in = m_out = nullptr;
    }
}

TlsTransport::~TlsTransport() { SSL_free(m_ssl); }

Result<void> TlsTransport::open(UniqueFd& fd, std::string_view prefix)
{
    if (!m_ssl || !m_in)
        return Error::message("SSL_new", take_openssl_error());
    if (auto opened = m_tcp.open(fd); !opened)
        return opened;
    if (!prefix.empty())
        BIO_write(m_in, prefix.data(), static_cast<int>(prefix.size()));
    update_socket_reading();
    if (!prefix.empty())
        uv_timer_start(&m_resume, resume_cb, 0, 0);
    return {};
}

Result<void> TlsTransport::start_reading()
{
    if (m_reading || m_closing || m_read_ended)
        return {};
    m_reading = true;
    update_socket_reading();
    if (buffered() || m_socket_end != 0)
        uv_timer_start(&m_resume, resume_cb, 0, 0);
    return {};
}

void TlsTransport::stop_reading()
{
    m_reading = false;
    update_socket_reading();
}

Result<Transport::Written> TlsTransport::write(std::string bytes)
{
    if (m_closing)
        return uv_error(UV_ECANCELED, "SSL_write");
    if (!SSL_is_init_finished(m_ssl))
        return uv_error(UV_ENOTCONN, "SSL_write", "the TLS handshake is not done");
    if (!bytes.empty()) {
        // A memory BIO takes everything: the record is whole at once.
        int n = SSL_write(m_ssl, bytes.data(), static_cast<int>(bytes.size()));
        if (n <= 0)
            return Error::message("SSL_write", take_openssl_error());
    }
    size_t pending = BIO_ctrl_pending(m_out);
    std::string records(pending, '\0');
    if (pending > 0)
        BIO_read(m_out, records.data(), static_cast<int>(pending));
    auto written = m_tcp.write(std::move(records));
    if (!written)
        return written;
    // Only a queued write has a callback to wait for (and to pass on).
    if (written.value() == Written::Queued)
        m_sent.push_back(Sent { true, bytes.size() });
    return written;
}

Result<void> TlsTransport::shutdown()
{
    if (m_closing)
        return uv_error(UV_ECANCELED, "uv_shutdown");
    // close_notify first, when there is a session to close; the socket's
    // write side follows once every record is out.
    if (SSL_is_init_finished(m_ssl)) {
        SSL_shutdown(m_ssl);
        ERR_clear_error();
        flush();
    }
    return m_tcp.shutdown();
}

size_t TlsTransport::queued_bytes() const { return m_tcp.queued_bytes(); }

bool TlsTransport::peer_sent_more() const { return buffered() || m_tcp.peer_sent_more(); }

void TlsTransport::close()
{
    if (m_closing)
        return;
    m_closing = true;
    m_reading = false;
    uv_timer_stop(&m_resume);
    uv_close(reinterpret_cast<uv_handle_t*>(&m_resume), [](uv_handle_t* handle) noexcept {
        static_cast<TlsTransport*>(handle->data)->on_handle_closed();
    });
    m_tcp.close();
}

bool TlsTransport::buffered() const { return SSL_pending(m_ssl) > 0 || BIO_ctrl_pending(m_in) > 0; }

// The socket is read while the handshake needs it or the owner wants
// plaintext, and OpenSSL does not hold a read's worth already.
void TlsTransport::update_socket_reading()
{
    bool want = !m_closing && m_socket_end == 0 && (!SSL_is_init_finished(m_ssl) || m_reading)
        && BIO_ctrl_pending(m_in) < max_buffered_ciphertext;
    if (!want) {
        m_tcp.stop_reading();
        return;
    }
    if (auto started = m_tcp.start_reading(); !started)
        end_reading(UV_EIO);
}

// Runs the handshake, then hands the owner plaintext while it reads; sends
// whatever OpenSSL wrote on the way.
void TlsTransport::pump()
{
    if (m_closing || m_read_ended)
        return;
    if (!SSL_is_init_finished(m_ssl)) {
        int rc = SSL_do_handshake(m_ssl);
        if (rc <= 0) {
            int error = SSL_get_error(m_ssl, rc);
            flush(); // an alert, or the server's flight
            if (error == SSL_ERROR_WANT_READ) {
                if (m_socket_end != 0 && m_reading)
                    end_reading(m_socket_end);
                update_socket_reading();
                return;
            }
            log::debug("TLS handshake failed: %s", take_openssl_error().c_str());
            if (m_reading)
                end_reading(UV_EPROTO);
            return;
        }
    }
    while (m_reading && !m_closing && !m_read_ended) {
        int n = SSL_read(m_ssl, m_read_buffer.data(), static_cast<int>(m_read_buffer.size()));
        if (n > 0) {
            flush(); // a ticket or key update OpenSSL wrote while reading
            m_events.on_transport_read(std::string_view(m_read_buffer.data(), static_cast<size_t>(n)));
            continue;
        }
        int error = SSL_get_error(m_ssl, n);
        flush();
        if (error == SSL_ERROR_WANT_READ) {
            if (m_socket_end != 0)
                end_reading(m_socket_end);
            break;
        }
        if (error == SSL_ERROR_ZERO_RETURN) {
            end_reading(UV_EOF); // close_notify: the client is done sending
        } else {
            log::debug("TLS read failed: %s", take_openssl_error().c_str());
            end_reading(UV_EPROTO);
        }
        break;
    }
    flush();
    update_socket_reading();
}

void TlsTransport::flush()
{
    size_t pending = BIO_ctrl_pending(m_out);
    if (pending == 0 || m_closing)
        return;
    std::string records(pending, '\0');
    BIO_read(m_out, records.data(), static_cast<int>(pending));
    if (auto written = m_tcp.write(std::move(records)); written && written.value() == Written::Queued)
        m_sent.push_back(Sent {});
}

void TlsTransport::end_reading(int status)
{
    if (m_read_ended)
        return;
    m_read_ended = true;
    m_reading = false;
    update_socket_reading();
    m_events.on_transport_read_end(status);
}

// ---- the socket's events ----

void TlsTransport::on_transport_read(std::string_view bytes)
{
    // The bytes are in the shared read buffer, which pump() reuses for
    // plaintext: OpenSSL copies them first.
    BIO_write(m_in, bytes.data(), static_cast<int>(bytes.size()));
    pump();
}

void TlsTransport::on_transport_read_end(int status)
{
    m_socket_end = status;
    pump(); // what OpenSSL still holds comes first, then the end
}

void TlsTransport::on_transport_written(size_t, int status)
{
    Sent sent = m_sent.empty() ? Sent {} : m_sent.front();
    if (!m_sent.empty())
        m_sent.pop_front();
    if (sent.owners)
        m_events.on_transport_written(sent.plain, status);
}

void TlsTransport::on_transport_shut_down(int status) { m_events.on_transport_shut_down(status); }

void TlsTransport::on_transport_closed() { on_handle_closed(); }

void TlsTransport::on_handle_closed()
{
    // The owner may free the transport in the last call; nothing touches it after.
    if (--m_open_handles == 0)
        m_events.on_transport_closed();
}

void TlsTransport::resume_cb(uv_timer_t* timer) noexcept { static_cast<TlsTransport*>(timer->data)->pump(); }

}
