// HttpSession: one client connection of a worker, passed by the supervisor
// with the bytes it already read. It parses HTTP/1.x requests with llhttp,
// checks each one's Host, hands them to the Router one at a time and writes
// the answers in request order; an answer may instead turn the connection into
// a ResponseStream (the event stream), which it then serves alone. It owns its
// uv_tcp_t (so the socket), a timer and its parser, and frees itself in the
// close callback of its last handle.
#pragma once

#include "common/duration.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "http/http_message.h"
#include "http/responder.h"

#include <cstdint>
#include <functional>
#include <llhttp.h>
#include <memory>
#include <string>
#include <string_view>
#include <uv.h>
#include <vector>

namespace posta {

class HttpSession;
class Router;

// What every session of a worker shares. Owned by the worker, which keeps it
// alive (and unchanged) until every session has closed.
struct SessionContext {
    uv_loop_t* loop = nullptr;
    Router const* router = nullptr;
    std::string host_key; // this identity's; a request for any other host gets 421
    size_t max_head_bytes = 16384;
    size_t max_body_bytes = 1048576;
    Duration head_timeout = std::chrono::seconds(10);
    // Called once for each session that create() returned, from its last
    // close callback, right before the session is freed.
    std::function<void(HttpSession&)> on_closed;
    // libuv reads into this and the session parses it at once, before the
    // next read of any session: one buffer serves the whole loop.
    std::vector<char> read_buffer = std::vector<char>(64 * 1024);
};

class HttpSession final : private ResponseSink, private StreamSink {
public:
    // Serves `fd`, an accepted TCP socket. `prefix` holds the bytes the
    // supervisor already read off it; they are parsed before the socket is
    // read. On success the session belongs to the loop (it frees itself after
    // closing, calling context.on_closed first); the first request may have
    // been handled by the time this returns. On failure the fd is closed and
    // on_closed is never called.
    static Result<HttpSession*> create(SessionContext&, UniqueFd fd, std::string peer_address,
        std::string peer_host, std::string prefix);

    // Graceful stop: an idle keep-alive connection closes now; one with a
    // request under way answers it with Connection: close, then closes; a
    // stream sends what is queued, then closes.
    void stop();
    // Closes the connection now, whatever it is doing. An outstanding
    // handler's answer is dropped.
    void abort(std::string_view reason);

    std::string const& peer() const { return m_peer; }

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
    // What paused the parser inside llhttp_execute.
    enum class ParserEvent { None, HeadersComplete, MessageComplete };
    struct WriteRequest;

    HttpSession(SessionContext&, std::string peer_address, std::string peer_host);
    ~HttpSession() override = default;

    void send_response(Response) override;
    std::shared_ptr<ResponseStream> start_stream(Response head) override;
    void stream_write(std::string bytes) override;
    size_t stream_queued_bytes() const override;
    void stream_close(Close, std::string_view reason) override;

    void process_input();
    void execute();
    void on_head_complete();
    void dispatch();
    void begin_next_request();
    void reject(int status, std::string_view code, std::string_view message);
    enum class Framing { ContentLength, UntilClose };
    void write_response(Response, Framing, bool keep_alive);
    void detach_stream();
    void watch_stream_progress();
    void queue_write(std::string bytes);
    void finish(std::string_view reason);
    void teardown(std::string_view reason);
    void enter(Phase);
    void update_reading();
    bool parsing() const { return m_phase == Phase::Idle || m_phase == Phase::Head || m_phase == Phase::Body; }

    void on_data(ssize_t nread, uv_buf_t const* buf);
    void on_eof();
    void on_written(size_t bytes, int status);
    void on_shut_down(int status);
    bool client_sent_more() const;
    void on_timeout();
    void on_handle_closed();

    // libuv trampolines.
    static void alloc_cb(uv_handle_t*, size_t, uv_buf_t*) noexcept;
    static void read_cb(uv_stream_t*, ssize_t, uv_buf_t const*) noexcept;
    static void write_cb(uv_write_t*, int) noexcept;
    static void shutdown_cb(uv_shutdown_t*, int) noexcept;
    static void timer_cb(uv_timer_t*) noexcept;
    static void close_cb(uv_handle_t*) noexcept;

    // llhttp trampolines; they only record, the session acts after
    // llhttp_execute returns.
    static llhttp_settings_t const* parser_settings();
    static int on_message_begin(llhttp_t*) noexcept;
    static int on_url(llhttp_t*, char const*, size_t) noexcept;
    static int on_header_field(llhttp_t*, char const*, size_t) noexcept;
    static int on_header_field_complete(llhttp_t*) noexcept;
    static int on_header_value(llhttp_t*, char const*, size_t) noexcept;
    static int on_header_value_complete(llhttp_t*) noexcept;
    static int on_headers_complete(llhttp_t*) noexcept;
    static int on_body(llhttp_t*, char const*, size_t) noexcept;
    static int on_message_complete(llhttp_t*) noexcept;
    void flush_header();

    SessionContext& m_context;
    std::string m_peer;      // "203.0.113.7:51234"
    std::string m_peer_host; // "203.0.113.7"
    uv_tcp_t m_tcp {};
    uv_timer_t m_timer {};
    uv_shutdown_t m_shutdown {};
    llhttp_t m_parser {};
    int m_open_handles = 2;
    bool m_notify_closed = true; // false when create() failed

    Phase m_phase = Phase::Idle;
    uint64_t m_created_at = 0; // loop time; the first request's head is due head_timeout after it
    bool m_reading = false;
    bool m_eof = false;
    bool m_processing = false; // inside process_input(): answers need no wake-up
    bool m_must_execute = false; // llhttp has work to do even without new bytes
    bool m_stopping = false;
    // The last exchange ended cleanly (a whole request read, nothing after
    // it, answered): at the close, lingering is needed only if the client
    // has sent more since (client_sent_more()).
    bool m_clean_end = false;
    size_t m_requests = 0; // answered so far
    size_t m_write_queue_bytes = 0;
    std::string m_close_reason;

    // Unparsed input: the prefix, then what was read while the parser was
    // paused; m_input_pos is where llhttp continues.
    std::string m_input;
    size_t m_input_pos = 0;

    // The request being read.
    ParserEvent m_event = ParserEvent::None;
    Request m_request;
    std::string m_field;
    std::string m_value;
    bool m_field_complete = false;
    size_t m_head_bytes = 0;
    bool m_body_too_large = false;

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
