// HttpSession in this process, on a loop the test drives, with handlers that
// answer later: pipelining waits for each answer, in order; a session closed
// under a working handler drops the late answer safely; handler bugs become
// 500s; stop() ends connections gracefully.
#include "test_support.h"
#include "worker/http_session.h"
#include "worker/router.h"

#include <doctest/doctest.h>
#include <functional>
#include <stdexcept>
#include <sys/socket.h>

using namespace posta;
using namespace posta::test;

namespace {

constexpr std::string_view host = "Host: arne.test\r\n";

std::string get(std::string_view path, std::string_view extra = {})
{
    return "GET " + std::string(path) + " HTTP/1.1\r\n" + std::string(host) + std::string(extra) + "\r\n";
}

// A loop with one session and the client end of its connection. The loop
// watches the client socket too, so uv_run(UV_RUN_ONCE) returns whenever
// either side has news; a deadline timer bounds every wait.
class Harness {
public:
    explicit Harness(std::string prefix = {})
    {
        REQUIRE(uv_loop_init(&m_loop) == 0);
        m_router.add("GET", "/sync", [](Request request, Responder responder) {
            Response r;
            r.body = "sync " + request.query;
            responder.respond(std::move(r));
        });
        m_router.add_prefix("GET", "/later", [this](Request request, Responder responder) {
            received.push_back(std::move(request));
            waiting.push_back(std::move(responder));
        });
        m_router.add("GET", "/drop", [](Request, Responder) {});
        m_router.add("GET", "/throw", [](Request, Responder) { throw std::runtime_error("boom"); });

        m_context.loop = &m_loop;
        m_context.router = &m_router;
        m_context.host_key = "arne.test";
        m_context.max_head_bytes = 4096;
        m_context.max_body_bytes = 1024;
        m_context.head_timeout = std::chrono::seconds(5);
        m_context.on_closed = [this](HttpSession&) { ++closed; };

        TcpPair pair = make_tcp_pair();
        m_client = std::move(pair.client);
        auto session = HttpSession::create(m_context, std::move(pair.server), "127.0.0.1:1", "127.0.0.1", prefix);
        REQUIRE(session.ok());
        m_session = session.value();

        REQUIRE(uv_poll_init(&m_loop, &m_client_poll, m_client.get()) == 0);
        m_client_poll.data = this;
        uv_poll_start(&m_client_poll, UV_READABLE, [](uv_poll_t* poll, int, int) noexcept {
            static_cast<Harness*>(poll->data)->read_client();
        });
        uv_timer_init(&m_loop, &m_deadline);
        m_deadline.data = this;
    }

    ~Harness()
    {
        if (closed == 0)
            m_session->abort("test over");
        uv_close(reinterpret_cast<uv_handle_t*>(&m_client_poll), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&m_deadline), nullptr);
        uv_run(&m_loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&m_loop) == 0);
    }

    HttpSession& session() { return *m_session; }

    void send(std::string_view bytes)
    {
        REQUIRE(::send(m_client.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
    }

    // Runs the loop until `done` (asked once per turn) holds or the deadline.
    bool pump_until(std::function<bool()> const& done, uint64_t timeout_ms = 5000)
    {
        m_timed_out = false;
        uv_timer_start(&m_deadline, [](uv_timer_t* t) noexcept { static_cast<Harness*>(t->data)->m_timed_out = true; },
            timeout_ms, 0);
        bool met = false;
        while (!(met = done()) && !m_timed_out)
            uv_run(&m_loop, UV_RUN_ONCE);
        uv_timer_stop(&m_deadline);
        return met;
    }

    // Runs whatever is ready, without waiting for anything new.
    void settle()
    {
        for (int i = 0; i < 8; ++i)
            uv_run(&m_loop, UV_RUN_NOWAIT);
    }

    std::optional<HttpResponse> response()
    {
        std::optional<HttpResponse> out;
        pump_until([&] { return (out = take_response(m_input)).has_value(); });
        return out;
    }

    bool client_sees_close()
    {
        return pump_until([&] { return m_client_eof; });
    }

    std::vector<Request> received;
    std::vector<Responder> waiting;
    int closed = 0;

private:
    void read_client()
    {
        char buf[16384];
        ssize_t n = ::recv(m_client.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            m_input.append(buf, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            m_client_eof = true;
            uv_poll_stop(&m_client_poll);
        }
    }

    uv_loop_t m_loop {};
    Router m_router;
    SessionContext m_context;
    UniqueFd m_client;
    HttpSession* m_session = nullptr;
    uv_poll_t m_client_poll {};
    uv_timer_t m_deadline {};
    bool m_timed_out = false;
    std::string m_input;
    bool m_client_eof = false;
};

Response text(std::string body)
{
    Response r;
    r.body = std::move(body);
    return r;
}

}

TEST_CASE("pipelined requests reach an asynchronous handler one at a time and are answered in order")
{
    Harness h;
    h.send(get("/later?1") + get("/later?2") + get("/sync?3"));
    REQUIRE(h.pump_until([&] { return h.received.size() == 1; }));
    // The second request is parsed only once the first is answered.
    h.settle();
    CHECK(h.received.size() == 1);
    CHECK(h.received[0].query == "1");
    CHECK(h.received[0].client_address == "127.0.0.1:1");
    h.waiting[0].respond(text("one"));
    REQUIRE(h.pump_until([&] { return h.received.size() == 2; }));
    CHECK(h.received[1].query == "2");
    h.waiting[1].respond(text("two"));

    auto first = h.response();
    auto second = h.response();
    auto third = h.response();
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(third);
    CHECK(first->body == "one");
    CHECK(second->body == "two");
    CHECK(third->body == "sync 3");
    CHECK(h.closed == 0);
}

TEST_CASE("a session closed while its handler works drops the late answer")
{
    Harness h;
    h.send(get("/later"));
    REQUIRE(h.pump_until([&] { return h.received.size() == 1; }));
    CHECK(h.waiting[0].pending());
    h.session().abort("test aborts");
    REQUIRE(h.pump_until([&] { return h.closed == 1; }));
    // The session is freed now; answering must neither crash nor write.
    CHECK(!h.waiting[0].pending());
    h.waiting[0].respond(text("too late"));
    h.waiting.clear();
    CHECK(h.client_sees_close());
}

TEST_CASE("a handler that drops its Responder answers 500 and the connection goes on")
{
    Harness h;
    h.send(get("/drop") + get("/sync"));
    auto dropped = h.response();
    auto next = h.response();
    REQUIRE(dropped);
    REQUIRE(next);
    CHECK(dropped->status == 500);
    CHECK(next->status == 200);
}

TEST_CASE("a handler that throws answers 500")
{
    Harness h;
    h.send(get("/throw"));
    auto r = h.response();
    REQUIRE(r);
    CHECK(r->status == 500);
}

TEST_CASE("the prefix passed with a connection is parsed before the socket")
{
    std::string request = get("/sync?p");
    Harness h(request.substr(0, 7));
    h.send(request.substr(7));
    auto r = h.response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "sync p");
}

TEST_CASE("stop closes an idle keep-alive connection at once")
{
    Harness h;
    h.send(get("/sync"));
    REQUIRE(h.response());
    h.session().stop();
    CHECK(h.pump_until([&] { return h.closed == 1; }));
    CHECK(h.client_sees_close());
}

TEST_CASE("stop during a request answers it with Connection: close, then closes")
{
    Harness h;
    h.send(get("/later"));
    REQUIRE(h.pump_until([&] { return h.received.size() == 1; }));
    h.session().stop();
    h.waiting[0].respond(text("last"));
    auto r = h.response();
    REQUIRE(r);
    CHECK(r->body == "last");
    CHECK(r->header("Connection") == "close");
    CHECK(h.client_sees_close());
    CHECK(h.pump_until([&] { return h.closed == 1; }));
}

TEST_CASE("after a clean Connection: close exchange the socket is closed without waiting for the client")
{
    Harness h;
    h.send(get("/sync", "Connection: close\r\n"));
    auto r = h.response();
    REQUIRE(r);
    CHECK(r->header("Connection") == "close");
    CHECK(h.client_sees_close());
    // The client has not closed its end; nothing of it is unread, so there
    // is nothing to linger for (the linger would last 2 s).
    CHECK(h.pump_until([&] { return h.closed == 1; }, 500));
}

TEST_CASE("a client that sent more after its Connection: close request gets its answer, then the linger")
{
    Harness h;
    h.send(get("/later", "Connection: close\r\n"));
    REQUIRE(h.pump_until([&] { return h.received.size() == 1; }));
    // Sent while the handler works, so it waits unread in the socket.
    h.send(get("/sync?never"));
    h.waiting[0].respond(text("answered"));
    auto r = h.response();
    REQUIRE(r);
    CHECK(r->body == "answered");
    CHECK(h.client_sees_close());
    // Closing now would answer the unread bytes with a reset: it lingers.
    CHECK_FALSE(h.pump_until([&] { return h.closed == 1; }, 300));
    CHECK(h.received.size() == 1);
}
