// How an HttpSession answers (http_session.h): responses queued on the
// transport in request order, rejections that end the connection, the
// stream a response may turn into (the session is then its StreamSink), and
// the write queue's progress, which resumes parsing or times a stalled
// stream out. Also refuse(), the one answer written without a session.
// Split from http_session.cpp, which reads, parses and runs the phases.
#include "http_session.h"

#include "common/log.h"

#include <sys/socket.h>

namespace posta {

namespace {

// A stream whose queued bytes make no progress at all for this long is torn
// down: the peer is stuck, not slow. A slow reader that keeps taking bytes is
// never timed out here; its owner bounds its backlog (SseHub drops it).
constexpr uint64_t stream_stall_timeout_ms = 60'000;

}

void HttpSession::refuse(UniqueFd fd, std::string_view peer, Rejection const& rejection)
{
    char discard[4096];
    for (int i = 0; i < 16 && ::recv(fd.get(), discard, sizeof discard, MSG_DONTWAIT) > 0; ++i) {
    }
    ResponseFraming framing;
    framing.keep_alive = false;
    std::string bytes = serialize_response(rejection.response(), framing, peer);
    // Best effort: a client that cannot take a small answer at once is not
    // waited for.
    [[maybe_unused]] ssize_t sent = ::send(fd.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

// Both kinds of answer: `serialize(framing)` gives the bytes.
template <typename Serialize>
void HttpSession::answer(int status, Serialize const& serialize)
{
    // Only the current request's slot is attached, and only while Handling.
    if (m_phase != Phase::Handling)
        return;
    m_slot.reset();
    ++m_requests;
    bool keep_alive = m_keep_alive && !m_stopping;
    log::debug("%s: %s -> %d", m_peer.c_str(), m_log_line.c_str(), status);
    write_answer(status, serialize(framing(ResponseFraming::Body::ContentLength, keep_alive)));
    if (m_phase == Phase::Closed)
        return;
    if (!keep_alive) {
        m_clean_end = input_consumed();
        finish("answered with Connection: close");
        return;
    }
    // Inside process_input() the loop goes on by itself, at once, so no
    // timer is armed (it would be re-armed for Idle in the same call);
    // otherwise the timer (0 ms) resumes parsing on the next loop turn,
    // outside the handler. Above the high-water mark enter() arms the
    // transfer timeout either way.
    if (m_processing && m_write_queue_bytes <= write_high_water)
        m_phase = Phase::Responded;
    else
        enter(Phase::Responded);
}

void HttpSession::send_response(Response response)
{
    answer(response.status,
        [&](ResponseFraming const& framing) { return serialize_response(response, framing, m_peer); });
}

void HttpSession::send_prepared(PreparedResponse const& response)
{
    answer(response.response().status, [&](ResponseFraming const& framing) { return response.serialize(framing); });
}

void HttpSession::reject(Rejection const& rejection)
{
    log::debug("%s: %d %s", m_peer.c_str(), rejection.status, rejection.message.c_str());
    if (auto slot = m_slot.lock())
        slot->detach();
    write_response(rejection.response(), ResponseFraming::Body::ContentLength, false);
    finish(rejection.message);
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
    write_response(head, ResponseFraming::Body::UntilClose, false);
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

size_t HttpSession::stream_queued_bytes() const { return m_transport->queued_bytes(); }

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

ResponseFraming HttpSession::framing(ResponseFraming::Body body, bool keep_alive) const
{
    return ResponseFraming { body, keep_alive, m_http_minor, m_head_request };
}

void HttpSession::write_response(Response const& response, ResponseFraming::Body body, bool keep_alive)
{
    write_answer(response.status, serialize_response(response, framing(body, keep_alive), m_peer));
}

void HttpSession::write_answer(int status, std::string bytes)
{
    if (status >= 100 && status < 600)
        ++m_context.responses_by_class[static_cast<size_t>(status / 100 - 1)];
    queue_write(std::move(bytes));
}

void HttpSession::queue_write(std::string bytes)
{
    if (m_phase == Phase::Closed)
        return;
    size_t size = bytes.size();
    auto written = m_transport->write(std::move(bytes));
    if (!written) {
        teardown(written.error().text());
        return;
    }
    // Done: the kernel has them already, and no callback will say so.
    if (written.value() == Transport::Written::Queued)
        m_write_queue_bytes += size;
}

void HttpSession::on_transport_written(size_t bytes, int status)
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

}
