// Responder: how a handler answers its request, at once or later. The worker
// is single-threaded, so "later" means from another callback of the same
// loop (a timer, a finished fetch). The connection may be gone by then: the
// answer is then dropped, never written to freed memory or to the next
// request on the same connection. An answer may also be a stream
// (ResponseStream): a head, then body bytes for as long as the handler's
// owner wants, on a connection that serves nothing else (the event stream).
#pragma once

#include "http/http_message.h"

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace posta {

class PreparedResponse;
class ResponseStream;

// What a Responder answers into: the HttpSession that read the request, or a
// test's stand-in.
class ResponseSink {
public:
    virtual ~ResponseSink() = default;
    // Called at most once per ResponseSlot (this or start_stream), on the
    // loop's thread.
    virtual void send_response(Response) = 0;
    // The same, for an answer laid out once (response_serializer.h). This
    // default sends a copy of its Response.
    virtual void send_prepared(PreparedResponse const&);
    // Sends `head` and hands the connection to the returned stream. A sink
    // that cannot stream (this default) answers 500 and returns nullptr.
    virtual std::shared_ptr<ResponseStream> start_stream(Response head);
};

// What a ResponseStream writes into, while it is attached: the HttpSession
// that sent its head, or a test's stand-in.
class StreamSink {
public:
    enum class Close {
        Flush,   // send what is queued, then close
        Discard, // close now; queued bytes are dropped
    };
    virtual ~StreamSink() = default;
    virtual void stream_write(std::string bytes) = 0;
    virtual size_t stream_queued_bytes() const = 0;
    virtual void stream_close(Close, std::string_view reason) = 0;
};

// The body of a streamed answer. The head went out without Content-Length
// and with Connection: close: the body is delimited by the connection's close
// (RFC 9112 section 6.3, item 8), which every HTTP/1.x client understands and
// which needs no framing per write. The connection reads no further
// requests; it ends when the owner closes the stream, the client goes away,
// a write fails, or the worker stops (then queued bytes are flushed first).
//
// The owner holds the stream by shared_ptr; the sink holds it weakly and
// detaches it when the connection ends, so the owner may outlive the
// connection (writes then do nothing) and the connection never outlives its
// last owner (dropping the last reference closes the stream, flushing).
class ResponseStream {
public:
    explicit ResponseStream(StreamSink* sink)
        : m_sink(sink)
    {
    }
    ResponseStream(ResponseStream const&) = delete;
    ResponseStream& operator=(ResponseStream const&) = delete;
    ~ResponseStream();

    // Queues `bytes` behind what was written before. Does nothing once the
    // stream is closed.
    void write(std::string bytes);
    // Bytes written that the kernel has not taken yet: the backlog a slow
    // client builds up. 0 once closed.
    size_t queued_bytes() const;
    // Flushes what is queued, then closes the connection. `reason` is logged.
    void close(std::string_view reason);
    // Closes the connection now, dropping what is queued.
    void abort(std::string_view reason);
    // False once closed by anyone: writes are dropped from then on.
    bool is_open() const { return m_sink != nullptr; }

    // Called once, when the connection has closed, whoever closed it (also
    // after close() and abort()). Never from inside a call to this stream:
    // always from a later loop callback, so the owner may drop the stream in
    // it. Not called if the stream is destroyed first.
    void set_on_closed(std::function<void()> callback) { m_on_closed = std::move(callback); }
    // Called whenever a write completes and queued_bytes() is 0 again: the
    // moment to write more after pausing for backpressure. Never from inside
    // a call to this stream.
    void set_on_drained(std::function<void()> callback) { m_on_drained = std::move(callback); }

    // For the sink. detach(): the connection is ending; no more writes reach
    // the sink. The sink calls the notify functions from its own callbacks,
    // holding a reference to the stream while it does.
    void detach() { m_sink = nullptr; }
    void notify_drained();
    void notify_closed();

private:
    StreamSink* m_sink;
    std::function<void()> m_on_closed;
    std::function<void()> m_on_drained;
};

// One request's pending answer, shared by every copy of its Responder. The
// sink holds it weakly and detaches it when the connection closes.
class ResponseSlot {
public:
    explicit ResponseSlot(ResponseSink* sink)
        : m_sink(sink)
    {
    }
    ResponseSlot(ResponseSlot const&) = delete;
    ResponseSlot& operator=(ResponseSlot const&) = delete;
    // The last Responder went away without answering: that is a handler bug;
    // it is logged and the client gets 500 rather than a hung connection.
    ~ResponseSlot();

    // Hands `response` to the sink unless it was answered or detached.
    void respond(Response response);
    void respond(PreparedResponse const& response);
    // Starts a stream unless answered or detached (then nullptr).
    std::shared_ptr<ResponseStream> start_stream(Response head);
    bool pending() const { return m_sink != nullptr; }
    // The sink is going away; later answers are dropped.
    void detach() { m_sink = nullptr; }

private:
    ResponseSink* m_sink;
};

// Cheap to copy: copies share one answer, and the first respond() or
// start_stream() wins.
class Responder {
public:
    explicit Responder(std::shared_ptr<ResponseSlot> slot)
        : m_slot(std::move(slot))
    {
    }

    // Sends the answer. Does nothing when this request was answered already
    // or its connection has closed (a handler that fetched something for a
    // client that left simply drops its answer).
    void respond(Response response) const { m_slot->respond(std::move(response)); }
    // The same for an answer that never changes: nothing of it is copied.
    void respond(PreparedResponse const& response) const { m_slot->respond(response); }
    // Answers with a stream: `head` (status and headers; its body, if any,
    // is the stream's first bytes) goes out at once, the rest through the
    // returned stream. nullptr when this request was answered already or its
    // connection has closed. A HEAD request, or one that arrives while the
    // worker stops, gets the head and a stream that is already closing.
    std::shared_ptr<ResponseStream> start_stream(Response head) const { return m_slot->start_stream(std::move(head)); }
    // False once answered or once the connection closed: an asynchronous
    // handler may skip work nobody waits for.
    bool pending() const { return m_slot->pending(); }

private:
    std::shared_ptr<ResponseSlot> m_slot;
};

}
