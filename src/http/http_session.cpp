// How a connection runs. Bytes go through one loop, process_input(), which
// feeds the RequestParser and acts on what it reports. The parser is paused at the end
// of every head (to check Host, size and Expect before any body is read) and
// at the end of every message (to hand the request to the Router). While a
// request is with its handler the socket is not read, so pipelined requests
// are parsed and answered one at a time, in order, and a client cannot make
// us buffer more than one read beyond the request being answered.
//
// The session reads and writes only through its Transport. Every way out
// goes through teardown(reason), the one place that closes the transport and
// the timer; the session is freed in the last close callback. Orderly ends
// (after a final answer, EOF, stop) go through finish(): flush, shutdown,
// linger (unless the exchange ended cleanly and nothing more came), then
// teardown.
//
// How answers are written, and the stream, are in http_session_output.cpp.
//
// A handler may answer with a stream instead (start_stream): the head goes
// out with Connection: close and no Content-Length, the connection enters
// Streaming and stays there until the stream's owner closes it, the client
// goes away or the worker stops. Nothing more is parsed; input is read and
// discarded, so EOF is noticed at once. Both ends, finish() and teardown(),
// detach the stream; its owner is told in the last close callback, outside
// any call it made.
#include "http_session.h"

#include "common/log.h"
#include "http/forwarded.h"
#include "http/head_check.h"
#include "http/router.h"
#include "http/tcp_transport.h"
#include "http/tls_transport.h"

#include <algorithm>
#include <exception>
#include <sys/socket.h>

namespace posta {

namespace {

// An idle keep-alive connection is closed after this long without a new
// request: long enough for a client's next request, short enough that idle
// connections do not pile up (nginx uses 75 s, Apache 5 s).
constexpr uint64_t keep_alive_timeout_ms = 60'000;
// Answers the client does not read for this long: the client is gone.
// (A body has its own deadline, body_timeout, for the whole of it: progress
// does not extend it, so a trickle cannot hold the connection.)
constexpr uint64_t transfer_timeout_ms = 60'000;
// After the last answer and shutdown(SHUT_WR) we read and discard until the
// client closes, at most this long. Closing with unread input would send a
// reset that can destroy the answer still in flight (a 413 most of all).
constexpr uint64_t linger_timeout_ms = 2'000;

constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

}

// ---- Creation and teardown ----

HttpSession::HttpSession(SessionContext& context, std::string peer_address, std::string peer_host,
    size_t max_head_bytes)
    : m_context(context)
    , m_peer(std::move(peer_address))
    , m_peer_host(std::move(peer_host))
    , m_parser(RequestParser::Limits { max_head_bytes, context.max_body_bytes })
{
    uv_timer_init(context.loop, &m_timer); // cannot fail on Unix
    m_timer.data = this;
    m_created_at = uv_now(context.loop);
}

Result<HttpSession*> HttpSession::create(SessionContext& context, UniqueFd fd, std::string peer_address,
    std::string peer_host, std::string prefix, SSL_CTX* tls)
{
    // The supervisor read `prefix` under the max_head_bytes in force when it
    // accepted the connection, which a reload may have lowered since: a
    // head it let through whole is not refused here for its size.
    size_t max_head_bytes = tls ? context.max_head_bytes : std::max(context.max_head_bytes, prefix.size());
    auto* session = new HttpSession(context, peer_address, std::move(peer_host), max_head_bytes);
    auto& events = static_cast<TransportEvents&>(*session);
    Result<void> opened;
    if (tls) {
        auto transport = std::make_unique<TlsTransport>(context.loop, context.read_buffer, events, tls);
        auto* raw = transport.get();
        session->m_transport = std::move(transport);
        opened = raw->open(fd, prefix); // ciphertext: OpenSSL's, not the parser's
        prefix.clear();
        session->m_tls = true;
    } else {
        auto transport = std::make_unique<TcpTransport>(context.loop, context.read_buffer, events);
        auto* raw = transport.get();
        session->m_transport = std::move(transport);
        opened = raw->open(fd);
    }
    if (!opened) {
        // The handles are initialised, so they are closed (and the session
        // freed) the ordinary way; the fd is still ours and `fd` closes it.
        session->m_notify_closed = false;
        session->teardown("uv_tcp_open failed");
        Error error = opened.error();
        error.context = peer_address;
        return error;
    }

    log::debug("%s: connection received", session->m_peer.c_str());
    session->m_input = std::move(prefix);
    session->enter(Phase::Idle);
    session->process_input();
    return session;
}

void HttpSession::stop()
{
    m_stopping = true;
    if (m_phase == Phase::Streaming) {
        finish("worker stopping");
        return;
    }
    if (m_phase != Phase::Idle || m_requests == 0 || !input_consumed())
        return; // a request is under way (or the first one is still due): answer it first
    if (m_write_queue_bytes == 0)
        teardown("worker stopping");
    else
        finish("worker stopping");
}

void HttpSession::abort(std::string_view reason) { teardown(reason); }

void HttpSession::teardown(std::string_view reason)
{
    if (m_phase == Phase::Closed)
        return;
    log::debug("%s: connection closed: %.*s", m_peer.c_str(), static_cast<int>(reason.size()), reason.data());
    m_phase = Phase::Closed;
    // A handler still working on this connection's request answers into
    // nothing from now on.
    if (auto slot = m_slot.lock())
        slot->detach();
    m_slot.reset();
    detach_stream();
    m_transport->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&m_timer), timer_close_cb);
}

void HttpSession::on_transport_closed() { on_handle_closed(); }

void HttpSession::on_handle_closed()
{
    if (--m_open_handles > 0)
        return;
    // Held while its owner is told, who may drop its own reference.
    if (auto stream = m_stream.lock())
        stream->notify_closed();
    if (m_notify_closed && m_context.on_closed)
        m_context.on_closed(*this);
    delete this;
}

void HttpSession::finish(std::string_view reason)
{
    if (m_phase == Phase::Finishing || m_phase == Phase::Lingering || m_phase == Phase::Closed)
        return;
    m_close_reason = std::string(reason);
    if (auto slot = m_slot.lock())
        slot->detach();
    detach_stream();
    enter(Phase::Finishing);
    // The transport shuts the write side down once every queued write is done.
    if (auto shut = m_transport->shutdown(); !shut) {
        teardown(m_close_reason + " (" + shut.error().text() + ")");
        return;
    }
    update_reading();
}

void HttpSession::on_transport_shut_down(int status)
{
    if (m_phase == Phase::Closed)
        return; // cancelled by teardown
    if (status < 0) {
        teardown(m_close_reason + " (shutdown: " + uv_strerror(status) + ")");
        return;
    }
    // Nothing unread and nothing more coming from a client that sent one
    // request and took its answer: closing now resets nothing, so there is
    // no reason to wait for its FIN (what nginx's lingering_close "on" does).
    // Reading stops while a request is handled, so a pipelined request may
    // wait unread in the socket.
    if (m_eof || (m_clean_end && !m_transport->peer_sent_more())) {
        teardown(m_close_reason);
        return;
    }
    enter(Phase::Lingering);
    update_reading();
}

// ---- Phases, timers and reading ----

void HttpSession::enter(Phase phase)
{
    m_phase = phase;
    uint64_t now = uv_now(m_context.loop);
    auto head_timeout = static_cast<uint64_t>(m_context.head_timeout.count());
    // The first request was already under way when the supervisor passed the
    // connection: its head is due head_timeout after we got it.
    uint64_t first_head_due = m_created_at + head_timeout;
    uint64_t first_head_left = first_head_due > now ? first_head_due - now : 0;
    uint64_t timeout = 0;
    switch (phase) {
    case Phase::Idle:
        timeout = m_requests == 0 ? first_head_left : keep_alive_timeout_ms;
        break;
    case Phase::Head:
        timeout = m_requests == 0 ? first_head_left : head_timeout;
        break;
    case Phase::Body:
        timeout = static_cast<uint64_t>(m_context.body_timeout.count());
        break;
    case Phase::Handling:
        // The handler bounds its own work (fetch timeouts); no timer here.
        uv_timer_stop(&m_timer);
        return;
    case Phase::Responded:
        // 0: resume parsing on the next loop turn, outside the handler's stack.
        timeout = m_write_queue_bytes > write_high_water ? transfer_timeout_ms : 0;
        break;
    case Phase::Streaming:
        watch_stream_progress();
        return;
    case Phase::Finishing:
        timeout = transfer_timeout_ms;
        break;
    case Phase::Lingering:
        timeout = linger_timeout_ms;
        break;
    case Phase::Closed:
        return;
    }
    uv_timer_start(&m_timer, timer_cb, timeout, 0);
}

void HttpSession::update_reading()
{
    if (m_phase == Phase::Closed)
        return;
    bool want = !m_eof
        && (parsing() || m_phase == Phase::Streaming || m_phase == Phase::Finishing || m_phase == Phase::Lingering);
    if (want == m_reading)
        return;
    if (want) {
        if (auto started = m_transport->start_reading(); !started) {
            teardown(started.error().text());
            return;
        }
    } else {
        m_transport->stop_reading();
    }
    m_reading = want;
}

void HttpSession::on_timeout()
{
    switch (m_phase) {
    case Phase::Idle:
        if (m_requests == 0)
            reject({ 408, "request_timeout", "no request arrived in time" });
        else
            teardown("keep-alive connection idle");
        break;
    case Phase::Head:
        reject({ 408, "request_timeout", "the request head did not arrive in time" });
        break;
    case Phase::Body:
        reject({ 408, "request_timeout", "the request body did not arrive in time" });
        break;
    case Phase::Responded:
        if (m_write_queue_bytes > write_high_water)
            teardown("client does not read its answers");
        else
            process_input();
        break;
    case Phase::Streaming:
        teardown("the client took nothing of its stream for 60 s");
        break;
    case Phase::Finishing:
        teardown(m_close_reason + " (client did not take the last answer in time)");
        break;
    case Phase::Lingering:
        teardown(m_close_reason);
        break;
    case Phase::Handling:
    case Phase::Closed:
        break;
    }
}

void HttpSession::on_transport_read(std::string_view bytes)
{
    if (m_phase == Phase::Closed || !parsing())
        return; // finishing: what the client still sends is discarded
    m_input.append(bytes);
    process_input();
}

void HttpSession::on_transport_read_end(int status)
{
    m_reading = false;
    if (m_phase == Phase::Closed)
        return;
    if (status == UV_EOF)
        on_eof();
    else
        teardown(std::string("read: ") + uv_strerror(status));
}

void HttpSession::on_eof()
{
    m_eof = true;
    switch (m_phase) {
    case Phase::Idle:
        // A half-close after the last request is an ordinary goodbye; answers
        // still queued are flushed first.
        finish("client closed");
        break;
    case Phase::Head:
    case Phase::Body:
        teardown("client closed in the middle of a request");
        break;
    case Phase::Lingering:
        teardown(m_close_reason);
        break;
    case Phase::Streaming:
        // Stream clients never half-close to say "done sending"; EOF means
        // the client is gone and nobody reads what we would flush.
        teardown("client closed its stream");
        break;
    default:
        break; // Finishing: on_transport_shut_down closes, seeing m_eof
    }
    update_reading();
}

// ---- Parsing ----

void HttpSession::process_input()
{
    if (m_processing)
        return;
    m_processing = true;
    while (m_phase != Phase::Closed) {
        if (m_phase == Phase::Responded) {
            if (m_write_queue_bytes > write_high_water)
                break; // on_transport_written resumes once the client reads
            begin_next_request();
            continue;
        }
        if (!parsing())
            break;
        if (input_consumed() && !m_parser.must_parse())
            break;
        execute();
    }
    m_processing = false;
    if (input_consumed()) {
        m_input.clear();
        m_input_pos = 0;
    } else if (parsing() && m_input_pos > 0) {
        m_input.erase(0, m_input_pos);
        m_input_pos = 0;
    }
    update_reading();
}

void HttpSession::execute()
{
    auto step = m_parser.parse(std::string_view(m_input).substr(m_input_pos));
    m_input_pos += step.consumed;
    // The head timer runs from a request's first byte.
    if (m_phase == Phase::Idle && m_parser.message_begun())
        enter(Phase::Head);
    switch (step.event) {
    case RequestParser::Event::NeedMore:
        break;
    case RequestParser::Event::HeadComplete:
        on_head_complete();
        break;
    case RequestParser::Event::MessageComplete:
        dispatch();
        break;
    case RequestParser::Event::Rejected:
        reject(m_parser.rejection());
        break;
    }
}

void HttpSession::on_head_complete()
{
    Request& request = m_parser.request();
    request.client_address = m_peer;
    request.client_host = m_peer_host;
    if (m_context.trusted_proxies) {
        ClientOrigin origin = client_origin(m_peer_host, request.headers, *m_context.trusted_proxies);
        if (!origin.forwarded_host.empty()) {
            request.client_address = origin.forwarded_host + " via " + m_peer;
            request.client_host = std::move(origin.forwarded_host);
        }
        request.secure = origin.secure_at_front;
    }
    request.secure = request.secure || m_tls;
    m_head_request = request.is_head();
    m_keep_alive = request.keep_alive;
    m_http_minor = request.http_minor;
    // Assigned piecewise, so that its buffer serves every request.
    m_log_line.assign(request.method).append(1, ' ').append(request.target);

    BodyFraming const& framing = m_parser.framing();
    if (auto rejection = check_head(request, framing, HeadRules { m_context.host_key, m_context.max_body_bytes })) {
        reject(*rejection);
        return;
    }
    // With 100-continue the client need not send a body we would refuse.
    if (wants_continue(request, framing))
        queue_write(std::string(continue_line));
    // The body buffer grows as bytes arrive: a Content-Length alone reserves
    // nothing.

    enter(Phase::Body);
    m_parser.read_body();
}

void HttpSession::dispatch()
{
    enter(Phase::Handling);
    auto slot = std::make_shared<ResponseSlot>(static_cast<ResponseSink*>(this));
    m_slot = slot;
    try {
        m_context.router->dispatch(m_parser.take_request(), Responder(std::move(slot)));
    } catch (std::exception const& e) {
        log::error("%s: %s: handler failed: %s", m_peer.c_str(), m_log_line.c_str(), e.what());
        if (auto pending = m_slot.lock())
            pending->respond(Response::error(500, "internal_error", "the server failed to answer this request"));
    } catch (...) {
        log::error("%s: %s: handler failed", m_peer.c_str(), m_log_line.c_str());
        if (auto pending = m_slot.lock())
            pending->respond(Response::error(500, "internal_error", "the server failed to answer this request"));
    }
}

void HttpSession::begin_next_request()
{
    if (m_stopping && input_consumed()) {
        finish("worker stopping");
        return;
    }
    m_head_request = false;
    m_parser.next_request();
    enter(Phase::Idle);
}

// ---- libuv trampolines ----

void HttpSession::timer_cb(uv_timer_t* timer) noexcept { static_cast<HttpSession*>(timer->data)->on_timeout(); }

void HttpSession::timer_close_cb(uv_handle_t* handle) noexcept
{
    static_cast<HttpSession*>(handle->data)->on_handle_closed();
}

}
