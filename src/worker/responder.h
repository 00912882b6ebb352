// Responder: how a handler answers its request, at once or later. The worker
// is single-threaded, so "later" means from another callback of the same
// loop (a timer, a finished fetch). The connection may be gone by then: the
// answer is then dropped, never written to freed memory or to the next
// request on the same connection.
#pragma once

#include "http_message.h"

#include <memory>

namespace posta {

// What a Responder answers into: the HttpSession that read the request, or a
// test's stand-in.
class ResponseSink {
public:
    virtual ~ResponseSink() = default;
    // Called at most once per ResponseSlot, on the loop's thread.
    virtual void send_response(Response) = 0;
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
    bool pending() const { return m_sink != nullptr; }
    // The sink is going away; later answers are dropped.
    void detach() { m_sink = nullptr; }

private:
    ResponseSink* m_sink;
};

// Cheap to copy: copies share one answer, and the first respond() wins.
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
    // False once answered or once the connection closed: an asynchronous
    // handler may skip work nobody waits for.
    bool pending() const { return m_slot->pending(); }

private:
    std::shared_ptr<ResponseSlot> m_slot;
};

}
