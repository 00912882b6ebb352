// How a connection runs. Bytes go through one loop, process_input(), which
// feeds llhttp and acts on what it reports. The parser is paused at the end
// of every head (to check Host, size and Expect before any body is read) and
// at the end of every message (to hand the request to the Router). While a
// request is with its handler the socket is not read, so pipelined requests
// are parsed and answered one at a time, in order, and a client cannot make
// us buffer more than one read beyond the request being answered.
//
// Every way out goes through teardown(reason), the one place that closes the
// handles; the session is freed in the last close callback. Orderly ends
// (after a final answer, EOF, stop) go through finish(): flush, shutdown,
// linger (unless the exchange ended cleanly and nothing more came), then
// teardown.
//
// A handler may answer with a stream instead (start_stream): the head goes
// out with Connection: close and no Content-Length, the connection enters
// Streaming and stays there until the stream's owner closes it, the client
// goes away or the worker stops. Nothing more is parsed; input is read and
// discarded, so EOF is noticed at once. Both ends, finish() and teardown(),
// detach the stream; its owner is told in the last close callback, outside
// any call it made.
#include "http_session.h"

#include "common/host_key.h"
#include "common/log.h"
#include "http/router.h"
#include "protocol/timestamp.h"

#include <algorithm>
#include <cerrno>
#include <exception>
#include <sys/socket.h>

namespace posta {

namespace {

// An idle keep-alive connection is closed after this long without a new
// request: long enough for a client's next request, short enough that idle
// connections do not pile up (nginx uses 75 s, Apache 5 s).
constexpr uint64_t keep_alive_timeout_ms = 60'000;
// A body that makes no progress, or answers the client does not read, for
// this long: the client is gone.
constexpr uint64_t transfer_timeout_ms = 60'000;
// After the last answer and shutdown(SHUT_WR) we read and discard until the
// client closes, at most this long. Closing with unread input would send a
// reset that can destroy the answer still in flight (a 413 most of all).
constexpr uint64_t linger_timeout_ms = 2'000;
// A stream whose queued bytes make no progress at all for this long is torn
// down: the peer is stuck, not slow. A slow reader that keeps taking bytes is
// never timed out here; its owner bounds its backlog (SseHub drops it).
constexpr uint64_t stream_stall_timeout_ms = 60'000;
// Parsing resumes only while queued answer bytes are below this, so a client
// that pipelines without reading cannot make us buffer unbounded answers.
constexpr size_t write_high_water = 256 * 1024;

constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

HttpSession& owner_of(llhttp_t* parser) { return *static_cast<HttpSession*>(parser->data); }

// A request-target split for routing (RFC 9112 section 3.2): origin-form
// "/p?q", absolute-form "http://host/p?q" (whose authority replaces Host,
// section 3.2.2) and asterisk-form "*". Authority-form (CONNECT) is refused.
struct Target {
    std::string path;
    std::string query;
    std::optional<std::string> authority;
};

std::optional<Target> split_target(std::string_view target)
{
    Target out;
    std::string_view rest = target;
    if (target == "*") {
        out.path = "*";
        return out;
    }
    if (target.empty() || target.front() != '/') {
        size_t scheme_end = target.find("://");
        if (scheme_end == std::string_view::npos)
            return std::nullopt;
        std::string_view scheme = target.substr(0, scheme_end);
        if (!iequals(scheme, "http") && !iequals(scheme, "https"))
            return std::nullopt;
        std::string_view after = target.substr(scheme_end + 3);
        size_t authority_end = after.find_first_of("/?");
        std::string_view authority = after.substr(0, authority_end);
        if (authority.empty())
            return std::nullopt;
        out.authority = std::string(authority);
        rest = authority_end == std::string_view::npos ? std::string_view() : after.substr(authority_end);
    }
    size_t question = rest.find('?');
    out.path = std::string(rest.substr(0, question));
    if (question != std::string_view::npos)
        out.query = std::string(rest.substr(question + 1));
    if (out.path.empty())
        out.path = "/";
    return out;
}

bool has_line_break(std::string_view text) { return text.find_first_of("\r\n") != std::string_view::npos; }

}

struct HttpSession::WriteRequest {
    uv_write_t req {};
    std::string bytes;
    HttpSession* session = nullptr;
};

// ---- Creation and teardown ----

HttpSession::HttpSession(SessionContext& context, std::string peer_address, std::string peer_host)
    : m_context(context)
    , m_peer(std::move(peer_address))
    , m_peer_host(std::move(peer_host))
{
    uv_tcp_init(context.loop, &m_tcp); // cannot fail without a domain
    m_tcp.data = this;
    uv_timer_init(context.loop, &m_timer); // cannot fail on Unix
    m_timer.data = this;
    llhttp_init(&m_parser, HTTP_REQUEST, parser_settings());
    m_parser.data = this;
    m_created_at = uv_now(context.loop);
}

Result<HttpSession*> HttpSession::create(SessionContext& context, UniqueFd fd, std::string peer_address,
    std::string peer_host, std::string prefix)
{
    auto* session = new HttpSession(context, peer_address, std::move(peer_host));
    if (int rc = uv_tcp_open(&session->m_tcp, fd.get()); rc < 0) {
        // The handles are initialised, so they are closed (and the session
        // freed) the ordinary way; the fd is still ours and `fd` closes it.
        session->m_notify_closed = false;
        session->teardown("uv_tcp_open failed");
        return Error { "uv_tcp_open", rc, uv_strerror(rc), peer_address };
    }
    fd.release(); // the handle owns the socket now; uv_close closes it
    // Answers are small and come in bursts; do not let Nagle hold them back.
    uv_tcp_nodelay(&session->m_tcp, 1);

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
    if (m_phase != Phase::Idle || m_requests == 0 || m_input_pos != m_input.size())
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
    uv_close(reinterpret_cast<uv_handle_t*>(&m_tcp), close_cb);
    uv_close(reinterpret_cast<uv_handle_t*>(&m_timer), close_cb);
}

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
    // libuv shuts the write side down once every queued write is done.
    if (int rc = uv_shutdown(&m_shutdown, reinterpret_cast<uv_stream_t*>(&m_tcp), shutdown_cb); rc < 0) {
        teardown(m_close_reason + " (shutdown: " + uv_strerror(rc) + ")");
        return;
    }
    update_reading();
}

void HttpSession::on_shut_down(int status)
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
    if (m_eof || (m_clean_end && !client_sent_more())) {
        teardown(m_close_reason);
        return;
    }
    enter(Phase::Lingering);
    update_reading();
}

// Whether bytes from the client wait unread in the socket. Reading stops
// while a request is handled, so a pipelined request may be there.
bool HttpSession::client_sent_more() const
{
    uv_os_fd_t fd = -1;
    if (uv_fileno(reinterpret_cast<uv_handle_t const*>(&m_tcp), &fd) < 0)
        return true;
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
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
        timeout = transfer_timeout_ms;
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
        if (int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&m_tcp), alloc_cb, read_cb); rc < 0) {
            teardown(std::string("uv_read_start: ") + uv_strerror(rc));
            return;
        }
    } else {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&m_tcp));
    }
    m_reading = want;
}

void HttpSession::on_timeout()
{
    switch (m_phase) {
    case Phase::Idle:
        if (m_requests == 0)
            reject(408, "request_timeout", "no request arrived in time");
        else
            teardown("keep-alive connection idle");
        break;
    case Phase::Head:
        reject(408, "request_timeout", "the request head did not arrive in time");
        break;
    case Phase::Body:
        reject(408, "request_timeout", "the request body stopped arriving");
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

void HttpSession::on_data(ssize_t nread, uv_buf_t const* buf)
{
    if (nread == 0 || m_phase == Phase::Closed)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            on_eof();
        else
            teardown(std::string("read: ") + uv_strerror(static_cast<int>(nread)));
        return;
    }
    if (!parsing())
        return; // finishing: what the client still sends is discarded
    m_input.append(buf->base, static_cast<size_t>(nread));
    process_input();
    if (m_phase == Phase::Body)
        enter(Phase::Body); // progress: the body timer starts over
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
        break; // Finishing: on_shut_down closes, seeing m_eof
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
                break; // on_written resumes once the client reads
            begin_next_request();
            continue;
        }
        if (!parsing())
            break;
        if (m_input_pos == m_input.size() && !m_must_execute)
            break;
        execute();
    }
    m_processing = false;
    if (m_input_pos == m_input.size()) {
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
    char const* begin = m_input.data() + m_input_pos;
    size_t available = m_input.size() - m_input_pos;
    // Never parse past the head bound: nothing beyond it can be part of an
    // acceptable head. (The parser pauses at the end of every head, so all
    // bytes consumed in these phases are head bytes.)
    bool in_head = m_phase == Phase::Idle || m_phase == Phase::Head;
    size_t length = in_head ? std::min(available, m_context.max_head_bytes + 1 - m_head_bytes) : available;

    m_must_execute = false;
    m_event = ParserEvent::None;
    llhttp_errno_t err = llhttp_execute(&m_parser, begin, length);
    size_t consumed = length;
    if (err != HPE_OK) {
        char const* pos = llhttp_get_error_pos(&m_parser);
        if (pos >= begin && pos <= begin + length)
            consumed = static_cast<size_t>(pos - begin);
    }
    m_input_pos += consumed;
    if (in_head)
        m_head_bytes += consumed;

    if (err == HPE_OK) {
        if (in_head && m_head_bytes > m_context.max_head_bytes)
            reject(431, "head_too_large", "the request head is larger than this server accepts");
        return;
    }
    if (err == HPE_PAUSED) {
        if (m_event == ParserEvent::HeadersComplete) {
            if (m_head_bytes > m_context.max_head_bytes)
                reject(431, "head_too_large", "the request head is larger than this server accepts");
            else
                on_head_complete();
        } else if (m_event == ParserEvent::MessageComplete) {
            dispatch();
        } else {
            teardown("parser paused for no reason (a bug)");
        }
        return;
    }
    if (m_body_too_large) {
        reject(413, "body_too_large",
            "the request body is larger than " + std::to_string(m_context.max_body_bytes) + " bytes");
        return;
    }
    reject(400, "bad_request", std::string("malformed request: ") + llhttp_get_error_reason(&m_parser));
}

void HttpSession::on_head_complete()
{
    Request& request = m_request;
    request.method = llhttp_method_name(static_cast<llhttp_method_t>(m_parser.method));
    request.http_major = m_parser.http_major;
    request.http_minor = m_parser.http_minor;
    // We never switch protocols: after an Upgrade or CONNECT request the
    // bytes are not HTTP, so the connection ends with its answer.
    request.keep_alive = llhttp_should_keep_alive(&m_parser) != 0 && m_parser.upgrade == 0;
    request.client_address = m_peer;
    request.client_host = m_peer_host;
    m_head_request = request.method == "HEAD";
    m_keep_alive = request.keep_alive;
    m_http_minor = request.http_minor;
    m_log_line = request.method + " " + request.target;

    if (request.http_major != 1) {
        reject(505, "http_version_not_supported", "this server speaks HTTP/1.1 and HTTP/1.0");
        return;
    }
    auto target = split_target(request.target);
    if (!target) {
        reject(400, "bad_request", "the request target must be a path or an http(s) URL");
        return;
    }
    request.path = std::move(target->path);
    request.query = std::move(target->query);

    // Refs: RFC 9112 section 3.2: exactly one Host in HTTP/1.1; an absolute
    // target's authority replaces it.
    size_t hosts = request.headers.count("Host");
    if (hosts > 1) {
        reject(400, "bad_request", "the request has more than one Host header");
        return;
    }
    std::optional<std::string> authority = target->authority;
    if (!authority && hosts == 1)
        authority = std::string(*request.headers.get("Host"));
    if (!authority) {
        if (request.http_minor >= 1) {
            reject(400, "bad_request", "HTTP/1.1 requests need a Host header");
            return;
        }
    } else {
        auto key = host_key_from_header(*authority);
        if (!key) {
            reject(400, "bad_request", "the Host header is not a valid host[:port]");
            return;
        }
        // Keep-alive must never carry a request to another identity.
        if (*key != m_context.host_key) {
            reject(421, "misdirected_request",
                "this connection serves " + m_context.host_key + ", not " + *key + "; open a new connection");
            return;
        }
    }

    bool chunked = (m_parser.flags & F_CHUNKED) != 0;
    bool has_length = !chunked && (m_parser.flags & F_CONTENT_LENGTH) != 0;
    // Refuse before reading a byte of it, so the client learns at once (and,
    // with 100-continue, need not send it at all).
    if (has_length && m_parser.content_length > m_context.max_body_bytes) {
        reject(413, "body_too_large",
            "the request body is larger than " + std::to_string(m_context.max_body_bytes) + " bytes");
        return;
    }
    bool expects_body = chunked || (has_length && m_parser.content_length > 0);
    if (auto expect = request.headers.get("Expect")) {
        if (!iequals(trim_ows(*expect), "100-continue")) {
            reject(417, "expectation_failed", "only Expect: 100-continue is supported");
            return;
        }
        // Refs: RFC 9110 section 10.1.1: not to HTTP/1.0 clients, and only
        // when a body is to come.
        if (expects_body && request.http_minor >= 1)
            queue_write(std::string(continue_line));
    }
    if (has_length)
        request.body.reserve(static_cast<size_t>(m_parser.content_length));

    enter(Phase::Body);
    llhttp_resume(&m_parser);
    // A request without a body completes without another byte.
    m_must_execute = true;
}

void HttpSession::dispatch()
{
    enter(Phase::Handling);
    auto slot = std::make_shared<ResponseSlot>(static_cast<ResponseSink*>(this));
    m_slot = slot;
    Request request = std::move(m_request);
    m_request = Request {};
    try {
        m_context.router->dispatch(std::move(request), Responder(std::move(slot)));
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
    if (m_stopping && m_input_pos == m_input.size()) {
        finish("worker stopping");
        return;
    }
    m_request = Request {};
    m_field.clear();
    m_value.clear();
    m_field_complete = false;
    m_head_bytes = 0;
    m_body_too_large = false;
    m_head_request = false;
    llhttp_resume(&m_parser);
    enter(Phase::Idle);
}

// ---- Answering ----

void HttpSession::send_response(Response response)
{
    // Only the current request's slot is attached, and only while Handling.
    if (m_phase != Phase::Handling)
        return;
    m_slot.reset();
    ++m_requests;
    bool keep_alive = m_keep_alive && !m_stopping;
    log::debug("%s: %s -> %d", m_peer.c_str(), m_log_line.c_str(), response.status);
    write_response(std::move(response), Framing::ContentLength, keep_alive);
    if (m_phase == Phase::Closed)
        return;
    if (!keep_alive) {
        m_clean_end = m_input_pos == m_input.size();
        finish("answered with Connection: close");
        return;
    }
    // Inside process_input() the loop goes on by itself; otherwise the timer
    // (0 ms) resumes parsing on the next loop turn, outside the handler.
    enter(Phase::Responded);
}

void HttpSession::reject(int status, std::string_view code, std::string_view message)
{
    log::debug("%s: %d %.*s", m_peer.c_str(), status, static_cast<int>(message.size()), message.data());
    if (auto slot = m_slot.lock())
        slot->detach();
    write_response(Response::error(status, code, message), Framing::ContentLength, false);
    finish(message);
}

std::shared_ptr<ResponseStream> HttpSession::start_stream(Response head)
{
    // Only the current request's slot is attached, and only while Handling.
    if (m_phase != Phase::Handling)
        return nullptr;
    m_slot.reset();
    ++m_requests;
    log::debug("%s: %s -> %d (stream)", m_peer.c_str(), m_log_line.c_str(), head.status);
    auto stream = std::make_shared<ResponseStream>(static_cast<StreamSink*>(this));
    m_stream = stream;
    // What the client pipelined behind this request is never answered.
    m_input.clear();
    m_input_pos = 0;
    write_response(std::move(head), Framing::UntilClose, false);
    if (m_phase == Phase::Closed)
        return stream; // the head failed to go out; the owner hears of the close
    enter(Phase::Streaming);
    // HEAD has its answer in the head alone; a stopping worker starts no
    // stream that would only delay its exit.
    if (m_head_request)
        finish("answered HEAD of a stream");
    else if (m_stopping)
        finish("worker stopping");
    else
        update_reading();
    return stream;
}

void HttpSession::stream_write(std::string bytes)
{
    if (m_phase != Phase::Streaming || bytes.empty())
        return;
    queue_write(std::move(bytes));
    if (m_phase == Phase::Streaming)
        watch_stream_progress();
}

size_t HttpSession::stream_queued_bytes() const
{
    // What libuv could not hand to the kernel yet; bytes the kernel took but
    // whose write callback is still to run do not count as a backlog.
    return uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t const*>(&m_tcp));
}

void HttpSession::stream_close(Close how, std::string_view reason)
{
    if (m_phase != Phase::Streaming)
        return;
    if (how == Close::Discard)
        teardown(reason);
    else
        finish(reason);
}

void HttpSession::detach_stream()
{
    if (auto stream = m_stream.lock())
        stream->detach();
}

// While a stream has bytes queued the timer measures how long since the
// kernel last took some; with nothing queued no timer runs (keepalives are
// the owner's business).
void HttpSession::watch_stream_progress()
{
    if (stream_queued_bytes() == 0)
        uv_timer_stop(&m_timer);
    else if (!uv_is_active(reinterpret_cast<uv_handle_t const*>(&m_timer)))
        uv_timer_start(&m_timer, timer_cb, stream_stall_timeout_ms, 0);
}

void HttpSession::write_response(Response response, Framing framing, bool keep_alive)
{
    bool no_body = status_forbids_body(response.status);
    std::string out;
    out.reserve(256 + response.body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(response.status);
    out += ' ';
    out += status_reason(response.status);
    out += "\r\n";
    if (response.headers.count("Date") == 0) {
        out += "Date: ";
        out += http_date_now();
        out += "\r\n";
    }
    for (auto const& [name, value] : response.headers) {
        // Framing is ours alone; a line break would let a value forge headers.
        if (iequals(name, "Content-Length") || iequals(name, "Connection") || iequals(name, "Transfer-Encoding"))
            continue;
        if (has_line_break(name) || has_line_break(value)) {
            log::error("%s: dropped response header %s with a line break", m_peer.c_str(), name.c_str());
            continue;
        }
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    // HEAD gets GET's Content-Length, without the body (RFC 9110 9.3.2). A
    // stream's body ends with the connection (RFC 9112 section 6.3, item 8).
    if (!no_body && framing == Framing::ContentLength) {
        out += "Content-Length: ";
        out += std::to_string(response.body.size());
        out += "\r\n";
    }
    if (!keep_alive)
        out += "Connection: close\r\n";
    else if (m_http_minor == 0)
        out += "Connection: keep-alive\r\n";
    out += "\r\n";
    if (!no_body && !m_head_request)
        out += response.body;
    queue_write(std::move(out));
}

void HttpSession::queue_write(std::string bytes)
{
    if (m_phase == Phase::Closed)
        return;
    auto* write = new WriteRequest;
    write->bytes = std::move(bytes);
    write->session = this;
    write->req.data = write;
    size_t size = write->bytes.size();
    uv_buf_t buf = uv_buf_init(write->bytes.data(), static_cast<unsigned>(size));
    m_write_queue_bytes += size;
    if (int rc = uv_write(&write->req, reinterpret_cast<uv_stream_t*>(&m_tcp), &buf, 1, write_cb); rc < 0) {
        // A function that fails never calls its callback (libuv).
        m_write_queue_bytes -= size;
        delete write;
        teardown(std::string("write: ") + uv_strerror(rc));
    }
}

void HttpSession::on_written(size_t bytes, int status)
{
    m_write_queue_bytes -= bytes;
    if (m_phase == Phase::Closed)
        return; // cancelled by teardown
    if (status < 0) {
        teardown(std::string("write: ") + uv_strerror(status));
        return;
    }
    if (m_phase == Phase::Responded && m_write_queue_bytes <= write_high_water)
        enter(Phase::Responded); // resume on the next loop turn
    if (m_phase == Phase::Streaming) {
        // Progress: the stall timer starts over (or stops when all is out).
        uv_timer_stop(&m_timer);
        watch_stream_progress();
        if (stream_queued_bytes() == 0) {
            // Held while its owner is told, who may drop its own reference.
            if (auto stream = m_stream.lock())
                stream->notify_drained();
        }
    }
}

// ---- libuv trampolines ----

void HttpSession::alloc_cb(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept
{
    auto* self = static_cast<HttpSession*>(handle->data);
    auto& buffer = self->m_context.read_buffer;
    *buf = uv_buf_init(buffer.data(), static_cast<unsigned>(buffer.size()));
}

void HttpSession::read_cb(uv_stream_t* stream, ssize_t nread, uv_buf_t const* buf) noexcept
{
    static_cast<HttpSession*>(stream->data)->on_data(nread, buf);
}

void HttpSession::write_cb(uv_write_t* req, int status) noexcept
{
    auto* write = static_cast<WriteRequest*>(req->data);
    HttpSession* self = write->session;
    size_t bytes = write->bytes.size();
    delete write;
    // Write callbacks run before the close callback, so the session is alive.
    self->on_written(bytes, status);
}

void HttpSession::shutdown_cb(uv_shutdown_t* req, int status) noexcept
{
    static_cast<HttpSession*>(req->handle->data)->on_shut_down(status);
}

void HttpSession::timer_cb(uv_timer_t* timer) noexcept { static_cast<HttpSession*>(timer->data)->on_timeout(); }

void HttpSession::close_cb(uv_handle_t* handle) noexcept { static_cast<HttpSession*>(handle->data)->on_handle_closed(); }

// ---- llhttp trampolines ----

llhttp_settings_t const* HttpSession::parser_settings()
{
    static llhttp_settings_t const settings = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_message_begin = on_message_begin;
        s.on_url = on_url;
        s.on_header_field = on_header_field;
        s.on_header_field_complete = on_header_field_complete;
        s.on_header_value = on_header_value;
        s.on_header_value_complete = on_header_value_complete;
        s.on_headers_complete = on_headers_complete;
        s.on_body = on_body;
        s.on_message_complete = on_message_complete;
        return s;
    }();
    return &settings;
}

int HttpSession::on_message_begin(llhttp_t* parser) noexcept
{
    HttpSession& self = owner_of(parser);
    self.m_request = Request {};
    self.enter(Phase::Head);
    return 0;
}

int HttpSession::on_url(llhttp_t* parser, char const* at, size_t length) noexcept
{
    owner_of(parser).m_request.target.append(at, length);
    return 0;
}

void HttpSession::flush_header()
{
    std::string_view value = trim_ows(m_value);
    m_request.headers.add(std::move(m_field), std::string(value));
    m_field.clear();
    m_value.clear();
    m_field_complete = false;
}

int HttpSession::on_header_field(llhttp_t* parser, char const* at, size_t length) noexcept
{
    HttpSession& self = owner_of(parser);
    if (self.m_field_complete)
        self.flush_header(); // the previous field had an empty value
    self.m_field.append(at, length);
    return 0;
}

int HttpSession::on_header_field_complete(llhttp_t* parser) noexcept
{
    owner_of(parser).m_field_complete = true;
    return 0;
}

int HttpSession::on_header_value(llhttp_t* parser, char const* at, size_t length) noexcept
{
    owner_of(parser).m_value.append(at, length);
    return 0;
}

int HttpSession::on_header_value_complete(llhttp_t* parser) noexcept
{
    owner_of(parser).flush_header();
    return 0;
}

int HttpSession::on_headers_complete(llhttp_t* parser) noexcept
{
    HttpSession& self = owner_of(parser);
    if (self.m_field_complete)
        self.flush_header();
    self.m_event = ParserEvent::HeadersComplete;
    return HPE_PAUSED;
}

int HttpSession::on_body(llhttp_t* parser, char const* at, size_t length) noexcept
{
    HttpSession& self = owner_of(parser);
    if (self.m_request.body.size() + length > self.m_context.max_body_bytes) {
        self.m_body_too_large = true;
        return HPE_USER;
    }
    self.m_request.body.append(at, length);
    return 0;
}

int HttpSession::on_message_complete(llhttp_t* parser) noexcept
{
    owner_of(parser).m_event = ParserEvent::MessageComplete;
    return HPE_PAUSED;
}

}
