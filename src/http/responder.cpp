#include "responder.h"

#include "common/log.h"
#include "http/response_serializer.h"

#include <utility>

namespace posta {

std::shared_ptr<ResponseStream> ResponseSink::start_stream(Response)
{
    log::error("a handler answered with a stream where streams are not supported; sending 500");
    send_response(Response::error(500, "internal_error", "the server failed to answer this request"));
    return nullptr;
}

void ResponseSink::send_prepared(PreparedResponse const& response)
{
    send_response(response.response());
}

ResponseStream::~ResponseStream()
{
    // The last owner let go of an open stream: end it the orderly way.
    if (StreamSink* sink = std::exchange(m_sink, nullptr))
        sink->stream_close(StreamSink::Close::Flush, "the stream's owner let it go");
}

void ResponseStream::write(std::string bytes)
{
    if (m_sink)
        m_sink->stream_write(std::move(bytes));
}

size_t ResponseStream::queued_bytes() const { return m_sink ? m_sink->stream_queued_bytes() : 0; }

void ResponseStream::close(std::string_view reason)
{
    if (StreamSink* sink = std::exchange(m_sink, nullptr))
        sink->stream_close(StreamSink::Close::Flush, reason);
}

void ResponseStream::abort(std::string_view reason)
{
    if (StreamSink* sink = std::exchange(m_sink, nullptr))
        sink->stream_close(StreamSink::Close::Discard, reason);
}

void ResponseStream::notify_drained()
{
    // A copy: the callback may replace itself.
    if (auto callback = m_on_drained)
        callback();
}

void ResponseStream::notify_closed()
{
    m_sink = nullptr;
    m_on_drained = nullptr;
    // Taken out first: the callback may drop the owner's reference (the
    // sink holds another while it notifies) or set a new callback.
    if (auto callback = std::exchange(m_on_closed, nullptr))
        callback();
}

ResponseSlot::~ResponseSlot()
{
    if (!m_sink)
        return;
    log::error("a handler dropped its request without answering; sending 500");
    respond(Response::error(500, "internal_error", "the server failed to answer this request"));
}

void ResponseSlot::respond(Response response)
{
    if (ResponseSink* sink = std::exchange(m_sink, nullptr))
        sink->send_response(std::move(response));
}

void ResponseSlot::respond(PreparedResponse const& response)
{
    if (ResponseSink* sink = std::exchange(m_sink, nullptr))
        sink->send_prepared(response);
}

std::shared_ptr<ResponseStream> ResponseSlot::start_stream(Response head)
{
    if (ResponseSink* sink = std::exchange(m_sink, nullptr))
        return sink->start_stream(std::move(head));
    return nullptr;
}

}
