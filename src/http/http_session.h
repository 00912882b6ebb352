// HttpSession: one client connection of a worker, passed by the supervisor
// with the bytes it already read. It runs the connection: requests parsed by
// its RequestParser and checked (head_check.h) are handed to the Router one
// at a time, and the answers written in request order; an answer may instead
// turn the connection into a ResponseStream (the event stream), which it then
// serves alone. It owns its Transport (so the socket), a timer and its
// parser, and frees itself once both handles have closed.
#pragma once

#include "common/duration.h"
#include "config/outbound_policy.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "http/http_message.h"
#include "http/request_parser.h"
#include "http/responder.h"
#include "http/response_serializer.h"
#include "http/transport.h"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <openssl/types.h>
#include <string>
#include <string_view>
#include <uv.h>
#include <vector>

namespace posta {

class HttpSession;
class Router;

// What every session of a worker shares. Owned by the worker, which keeps it
// alive until every session has closed. A reload may change the bounds: a
// session takes max_head_bytes (at least what the supervisor read of its
// first head) and max_body_bytes when it is created, and reads the timeouts
// each time it arms its timer.
struct SessionContext {
    uv_loop_t* loop = nullptr;
    Router const* router = nullptr;
    std::string host_key; // this identity's; a request for any other host gets 421
    // The fronts whose X-Forwarded-For and X-Forwarded-Proto are believed
    // (http/forwarded.h); kept up to date by the worker across reloads.
    std::vector<AddressRange> const* trusted_proxies = nullptr;
    size_t max_head_bytes = 16384;
    size_t max_body_bytes = 1048576;
    Duration head_timeout = std::chrono::seconds(10);
    // A body must arrive whole within this of the end of its head.
    Duration body_timeout = std::chrono::seconds(60);
    // Responses the sessions wrote, by status class ([0] is 1xx, [4] 5xx;
    // any other status is not counted): the worker's metrics report.
    std::array<uint64_t, 5> responses_by_class {};
    // Called once for each session that create() returned, from its last
    // close callback, right before the session is freed.
    std::function<void(HttpSession&)> on_closed;
    // libuv reads into this and the session parses it at once, before the
    // next read of any session: one buffer serves the whole loop.
    std::vector<char> read_buffer = std::vector<char>(64 * 1024);
};

class HttpSession final : private ResponseSink, private StreamSink, private TransportEvents {
public:
    // Serves `fd`, an accepted TCP socket, in plain HTTP, or over TLS with
    // the server context `tls` when it is not null (TlsTransport). `prefix`
    // holds the bytes the supervisor already read off it; they are parsed
    // (or, on TLS, decrypted) before the socket is read. On success the
    // session belongs to the loop (it frees itself after closing, calling
    // context.on_closed first); the first request may have been handled by
    // the time this returns. On failure the fd is closed and on_closed is
    // never called.
    static Result<HttpSession*> create(SessionContext&, UniqueFd fd, std::string peer_address,
        std::string peer_host, std::string prefix, SSL_CTX* tls = nullptr);

    // Graceful stop: an idle keep-alive connection closes now; one with a
    // request under way answers it with Connection: close, then closes; a
    // stream sends what is queued, then closes.
    void stop();
    // Closes the connection now, whatever it is doing. An outstanding
    // handler's answer is dropped.
    void abort(std::string_view reason);

    // Answers `rejection` on a connection that will not be served and closes
    // it, without a session: one non-blocking write on a fresh socket, after
    // reading off (without waiting) what the client sent, so that the close
    // is a FIN rather than a reset that could destroy the answer.
    static void refuse(UniqueFd fd, std::string_view peer, Rejection const& rejection);

    std::string const& peer() const { return m_peer; }
    std::string const& peer_host() const { return m_peer_host; }

private:
    enum class Phase {
        Idle,      // between requests: reading, waiting for the next one
        Head,      // reading a request head (head_timeout runs)
        Body,      // reading a request body
        Handling,  // the router has the request; not reading
        Responded, // answer queued; parsing resumes on the next loop turn
        Streaming, // the answer is a ResponseStream; input is discarded
        Finishing, // last answer queued; flushing, then shutdown(SHUT_WR)
        Lingering, // written and shut down; draining input until EOF or timeout
        Closed,    // handles closing; freed in the last close callback
    };

    HttpSession(SessionContext&, std::string peer_address, std::string peer_host, size_t max_head_bytes);
    ~HttpSession() override = default;

    void send_response(Response) override;
    void send_prepared(PreparedResponse const&) override;
    std::shared_ptr<ResponseStream> start_stream(Response head) override;
    void stream_write(std::string bytes) override;
    size_t stream_queued_bytes() const override;
    void stream_close(Close, std::string_view reason) override;

    void on_transport_read(std::string_view bytes) override;
    void on_transport_read_end(int status) override;
    void on_transport_written(size_t bytes, int status) override;
    void on_transport_shut_down(int status) override;
    void on_transport_closed() override;

    void process_input();
    void execute();
    void on_head_complete();
    void dispatch();
    void begin_next_request();
    void reject(Rejection const&);
    template <typename Serialize>
    void answer(int status, Serialize const&);
    void write_response(Response const&, ResponseFraming::Body, bool keep_alive);
    void write_answer(int status, std::string bytes);
    ResponseFraming framing(ResponseFraming::Body, bool keep_alive) const;
    void detach_stream();
    void watch_stream_progress();
    void queue_write(std::string bytes);
    void finish(std::string_view reason);
    void teardown(std::string_view reason);
    void enter(Phase);
    void update_reading();
    bool parsing() const { return m_phase == Phase::Idle || m_phase == Phase::Head || m_phase == Phase::Body; }
    bool input_consumed() const { return m_input_pos == m_input.size(); }

    void on_eof();
    void on_timeout();
    void on_handle_closed();
    static void timer_cb(uv_timer_t*) noexcept;
    static void timer_close_cb(uv_handle_t*) noexcept;

    // Parsing resumes only while queued answer bytes are below this, so a
    // client that pipelines without reading cannot make us buffer unbounded
    // answers.
    static constexpr size_t write_high_water = 256 * 1024;

    SessionContext& m_context;
    std::string m_peer;      // "203.0.113.7:51234"
    std::string m_peer_host; // "203.0.113.7"
    std::unique_ptr<Transport> m_transport;
    uv_timer_t m_timer {};
    RequestParser m_parser;
    int m_open_handles = 2; // the transport and the timer
    bool m_notify_closed = true; // false when create() failed
    bool m_tls = false;          // the transport is TlsTransport

    Phase m_phase = Phase::Idle;
    uint64_t m_created_at = 0; // loop time; the first request's head is due head_timeout after it
    bool m_reading = false;
    bool m_eof = false;
    bool m_processing = false; // inside process_input(): answers need no wake-up
    bool m_stopping = false;
    // The last exchange ended cleanly (a whole request read, nothing after
    // it, answered): at the close, lingering is needed only if the client
    // has sent more since (Transport::peer_sent_more).
    bool m_clean_end = false;
    size_t m_requests = 0; // answered so far
    size_t m_write_queue_bytes = 0;
    std::string m_close_reason;

    // Unparsed input: the prefix, then what was read while the parser was
    // paused; m_input_pos is where parsing continues.
    std::string m_input;
    size_t m_input_pos = 0;

    // The request being answered.
    std::weak_ptr<ResponseSlot> m_slot;
    bool m_head_request = false;
    bool m_keep_alive = false;
    int m_http_minor = 1;
    std::string m_log_line; // "GET /.well-known/posta", for the access log

    // The stream the last answer turned into, if any: detached when the
    // connection ends, told in the last close callback.
    std::weak_ptr<ResponseStream> m_stream;
};

}
