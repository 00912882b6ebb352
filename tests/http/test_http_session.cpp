// HttpSession in this process, on a loop the test drives, with handlers that
// answer later: pipelining waits for each answer, in order; a session closed
// under a working handler drops the late answer safely; handler bugs become
// 500s; stop() ends connections gracefully.
#include "support/session_harness.h"

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

// The session harness with routes that answer at once, later (the test
// keeps the Responder), never, or by throwing.
class Harness : public SessionHarness {
public:
    explicit Harness(std::string prefix = {})
    {
        router.add("GET", "/sync", [](Request request, Responder responder) {
            Response r;
            r.body = "sync " + request.query;
            responder.respond(std::move(r));
        });
        router.add_prefix("GET", "/later", [this](Request request, Responder responder) {
            received.push_back(std::move(request));
            waiting.push_back(std::move(responder));
        });
        router.add("GET", "/drop", [](Request, Responder) {});
        router.add("GET", "/throw", [](Request, Responder) { throw std::runtime_error("boom"); });
        context.max_head_bytes = 4096;
        context.max_body_bytes = 1024;
        context.head_timeout = std::chrono::seconds(5);
        start(std::move(prefix));
    }

    std::optional<HttpResponse> response()
    {
        std::optional<HttpResponse> out;
        pump_until([&] { return (out = take_response(input)).has_value(); });
        return out;
    }

    std::vector<Request> received;
    std::vector<Responder> waiting;
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

TEST_CASE("a body that trickles in gets 408 at body_timeout, however steadily it comes")
{
    Harness h;
    h.context.body_timeout = std::chrono::milliseconds(300);
    h.router.add("POST", "/post", [](Request, Responder responder) { responder.respond(text("took it")); });
    h.send("POST /post HTTP/1.1\r\nHost: arne.test\r\nContent-Length: 100\r\n\r\n");
    uv_loop_t* loop = h.context.loop;
    uint64_t started = uv_now(loop);
    std::optional<HttpResponse> answer;
    // A byte every 50 ms is progress each time; it must not be enough.
    while (!answer && uv_now(loop) - started < 3000) {
        h.send("x");
        h.pump_until([&] { return (answer = take_response(h.input)).has_value(); }, 50);
    }
    REQUIRE(answer);
    CHECK(answer->status == 408);
    CHECK(uv_now(loop) - started < 1500);
}
