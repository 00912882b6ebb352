// TlsTransport: a Transport that terminates TLS (OpenSSL, server side) over a
// TcpTransport it owns, with memory BIOs: ciphertext the socket reads goes
// into OpenSSL, plaintext OpenSSL yields goes to the session, and what
// OpenSSL writes (handshake, records, alerts, tickets) goes out through the
// TcpTransport. The HttpSession above sees plain bytes, as over TcpTransport.
// It owns its SSL (which holds a reference to its SSL_CTX) and a timer; its
// owner frees it only from on_transport_closed.
#pragma once

#include "http/tcp_transport.h"

#include <deque>
#include <openssl/ssl.h>
#include <uv.h>
#include <vector>

namespace posta {

class TlsTransport final : public Transport, private TransportEvents {
public:
    // `ctx` is the identity's server context (worker/tls_certificate.h);
    // the connection keeps a reference of its own, so the caller may
    // replace it (a reload) while this connection goes on.
    TlsTransport(uv_loop_t*, std::vector<char>& read_buffer, TransportEvents&, SSL_CTX* ctx);
    ~TlsTransport() override;
    TlsTransport(TlsTransport const&) = delete;
    TlsTransport& operator=(TlsTransport const&) = delete;

    // Takes the socket, as TcpTransport::open does. `prefix` is ciphertext
    // already read off it (the start of the ClientHello, by the supervisor);
    // OpenSSL reads it before the socket.
    Result<void> open(UniqueFd& fd, std::string_view prefix);

    Result<void> start_reading() override;
    void stop_reading() override;
    // Fails before the handshake is done: nothing can be said to the
    // client before then.
    Result<Written> write(std::string bytes) override;
    Result<void> shutdown() override;
    size_t queued_bytes() const override;
    bool peer_sent_more() const override;
    void close() override;

private:
    // The TcpTransport's events.
    void on_transport_read(std::string_view bytes) override;
    void on_transport_read_end(int status) override;
    void on_transport_written(size_t bytes, int status) override;
    void on_transport_shut_down(int status) override;
    void on_transport_closed() override;

    void pump();
    void flush();
    void end_reading(int status);
    void update_socket_reading();
    bool buffered() const;
    void on_handle_closed();
    static void resume_cb(uv_timer_t*) noexcept;

    // One write to the socket, in order: the plaintext bytes of the
    // owner's write() it carries, or none for OpenSSL's own records.
    struct Sent {
        bool owners = false;
        size_t plain = 0;
    };

    TransportEvents& m_events;
    std::vector<char>& m_read_buffer;
    TcpTransport m_tcp;
    SSL* m_ssl = nullptr;
    BIO* m_in = nullptr;  // ciphertext from the client, owned by m_ssl
    BIO* m_out = nullptr; // ciphertext to the client, owned by m_ssl
    // Delivers what OpenSSL holds once reading resumes, from the loop
    // rather than inside start_reading() (TransportEvents' rule).
    uv_timer_t m_resume {};
    std::deque<Sent> m_sent;
    int m_open_handles = 2; // m_tcp and m_resume
    int m_socket_end = 0;   // the socket's read end (UV_EOF or an error), once seen
    bool m_reading = false; // the owner wants plaintext
    bool m_read_ended = false;
    bool m_closing = false;
};

}
