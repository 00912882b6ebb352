// Streamed answers (ResponseStream) on a real HttpSession, on a loop the test
// drives: the head's framing, writes, the owner's close (flushing), the
// client's close, a graceful stop, backpressure (queued bytes, drained) and
// abort, HEAD, and the slot's safety once the connection is gone.
#include "support/session_harness.h"

#include <doctest/doctest.h>
#include <functional>
#include <sys/socket.h>

using namespace posta;
using namespace posta::test;

namespace {

std::string request(std::string_view method, std::string_view path)
{
    return std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: arne.test\r\n\r\n";
}

struct Head {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::optional<std::string> header(std::string_view name) const
    {
        for (auto const& [n, v] : headers) {
            if (iequals(n, name))
                return v;
        }
        return std::nullopt;
    }
};

// The session harness with a /stream route whose streams the test keeps and
// drives, a /later route whose Responders it keeps, and /sync.
class Harness : public SessionHarness {
public:
    explicit Harness(int server_sndbuf = 0)
    {
        router.add("GET", "/stream", [this](Request, Responder responder) {
            Response head;
            head.headers.set("Content-Type", "text/event-stream");
            head.body = first_bytes;
            auto stream = responder.start_stream(std::move(head));
            REQUIRE(stream);
            stream->set_on_closed([this] { ++stream_closed; });
            stream->set_on_drained([this] { ++drained; });
            streams.push_back(std::move(stream));
        });
        router.add("GET", "/later", [this](Request, Responder responder) { waiting.push_back(std::move(responder)); });
        router.add("GET", "/sync", [this](Request, Responder responder) {
            ++sync_calls;
            responder.respond(Response {});
        });
        // A small kernel buffer on our end, so a client that does not read
        // soon leaves bytes queued in the session. (Not the client's receive
        // buffer: shrinking it after the handshake makes the kernel
        // retransmit with backoff, for seconds.)
        start({}, server_sndbuf);
    }

    ~Harness()
    {
        streams.clear();
        waiting.clear();
    }

    // The streamed answer's head, once it is all there; the rest of the
    // input is the body so far.
    std::optional<Head> head()
    {
        pump_until([&] { return input.find("\r\n\r\n") != std::string::npos; });
        size_t end = input.find("\r\n\r\n");
        if (end == std::string::npos)
            return std::nullopt;
        Head out;
        std::string text = input.substr(0, end + 2);
        input.erase(0, end + 4);
        REQUIRE(text.rfind("HTTP/1.1 ", 0) == 0);
        out.status = std::stoi(text.substr(9, 3));
        size_t pos = text.find("\r\n") + 2;
        while (pos < text.size()) {
            size_t next = text.find("\r\n", pos);
            std::string line = text.substr(pos, next - pos);
            size_t colon = line.find(':');
            out.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
            pos = next + 2;
        }
        return out;
    }
    bool body_reaches(size_t bytes) { return pump_until([&] { return input.size() >= bytes; }); }

    std::string first_bytes;
    std::vector<std::shared_ptr<ResponseStream>> streams;
    std::vector<Responder> waiting;
    int stream_closed = 0;
    int drained = 0;
    int sync_calls = 0;
};

}

TEST_CASE("a streamed answer's head has Connection: close and no Content-Length, then the written bytes follow")
{
    Harness h;
    h.first_bytes = "first\n";
    h.send(request("GET", "/stream"));
    auto head = h.head();
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->header("Connection") == "close");
    CHECK(!head->header("Content-Length"));
    CHECK(!head->header("Transfer-Encoding"));
    CHECK(head->header("Content-Type") == "text/event-stream");
    REQUIRE(h.streams.size() == 1);
    auto& stream = *h.streams[0];
    CHECK(stream.is_open());
    stream.write("one\n");
    stream.write("two\n");
    CHECK(h.body_reaches(14));
    CHECK(h.input == "first\none\ntwo\n");
    h.settle();
    CHECK(h.stream_closed == 0);
    CHECK(h.closed == 0);
}

TEST_CASE("closing a stream flushes what is queued, then the client sees the end and the owner is told once")
{
    Harness h;
    h.send(request("GET", "/stream"));
    REQUIRE(h.head());
    std::string big(1 << 20, 'x');
    h.streams[0]->write(big);
    h.streams[0]->close("test closes");
    CHECK(!h.streams[0]->is_open());
    h.streams[0]->write("dropped");
    CHECK(h.client_sees_close());
    CHECK(h.input == big);
    CHECK(h.pump_until([&] { return h.closed == 1; }));
    CHECK(h.stream_closed == 1);
}

TEST_CASE("a client that goes away ends the stream and its owner is told")
{
    Harness h;
    h.send(request("GET", "/stream"));
    REQUIRE(h.head());
    h.close_client();
    CHECK(h.pump_until([&] { return h.stream_closed == 1; }));
    CHECK(h.closed == 1);
    CHECK(!h.streams[0]->is_open());
    h.streams[0]->write("nobody reads this"); // harmless
    CHECK(h.streams[0]->queued_bytes() == 0);
}

TEST_CASE("requests pipelined behind a stream request are never parsed or answered")
{
    Harness h;
    h.send(request("GET", "/stream") + request("GET", "/sync"));
    REQUIRE(h.head());
    h.streams[0]->write("data\n");
    CHECK(h.body_reaches(5));
    h.send(request("GET", "/sync"));
    h.settle();
    CHECK(h.sync_calls == 0);
    CHECK(h.input == "data\n");
    CHECK(h.stream_closed == 0);
}

TEST_CASE("stop flushes a stream, then closes it")
{
    Harness h;
    h.send(request("GET", "/stream"));
    REQUIRE(h.head());
    h.streams[0]->write("last words\n");
    h.session().stop();
    CHECK(!h.streams[0]->is_open());
    CHECK(h.client_sees_close());
    CHECK(h.input == "last words\n");
    CHECK(h.pump_until([&] { return h.stream_closed == 1 && h.closed == 1; }));
}

TEST_CASE("a stream whose owner lets go of it closes the connection")
{
    Harness h;
    h.send(request("GET", "/stream"));
    REQUIRE(h.head());
    h.streams[0]->write("bye\n");
    h.streams.clear();
    CHECK(h.client_sees_close());
    CHECK(h.input == "bye\n");
    CHECK(h.pump_until([&] { return h.closed == 1; }));
}

TEST_CASE("HEAD of a stream gets the head alone, then the end")
{
    Harness h;
    h.first_bytes = "not for HEAD";
    h.send(request("HEAD", "/stream"));
    auto head = h.head();
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(h.client_sees_close());
    CHECK(h.input.empty());
    REQUIRE(h.streams.size() == 1);
    CHECK(!h.streams[0]->is_open());
    CHECK(h.pump_until([&] { return h.stream_closed == 1; }));
}

TEST_CASE("a stream started while the worker stops gets its head and then ends")
{
    Harness h;
    h.send(request("GET", "/later"));
    REQUIRE(h.pump_until([&] { return h.waiting.size() == 1; }));
    h.session().stop();
    Response head;
    auto stream = h.waiting[0].start_stream(std::move(head));
    REQUIRE(stream);
    CHECK(!stream->is_open());
    REQUIRE(h.head());
    CHECK(h.client_sees_close());
}

TEST_CASE("a client that does not read leaves bytes queued; its owner hears when they drain")
{
    Harness h(4096);
    h.send(request("GET", "/stream"));
    REQUIRE(h.head());
    h.pause_reading();
    auto& stream = *h.streams[0];
    std::string chunk(64 * 1024, 'y');
    for (int i = 0; i < 16; ++i)
        stream.write(chunk);
    h.settle();
    CHECK(stream.queued_bytes() > 256 * 1024);
    int drained_before = h.drained;
    h.resume_reading();
    CHECK(h.pump_until([&] { return h.input.size() == 16 * chunk.size(); }));
    CHECK(h.pump_until([&] { return h.drained > drained_before; }));
    CHECK(stream.queued_bytes() == 0);
    CHECK(stream.is_open());
}

TEST_CASE("abort closes a stream at once and drops its backlog")
{
    Harness h(4096);
    h.send(request("GET", "/stream"));
    REQUIRE(h.head());
    h.pause_reading();
    auto& stream = *h.streams[0];
    for (int i = 0; i < 16; ++i)
        stream.write(std::string(64 * 1024, 'z'));
    h.settle();
    REQUIRE(stream.queued_bytes() > 0);
    stream.abort("backlog over its bound");
    CHECK(!stream.is_open());
    CHECK(stream.queued_bytes() == 0);
    CHECK(h.pump_until([&] { return h.closed == 1 && h.stream_closed == 1; }));
    h.resume_reading();
    CHECK(h.client_sees_close());
    CHECK(h.input.size() < 16 * 64 * 1024);
}

TEST_CASE("a stream cannot start for a request that was answered or whose connection closed")
{
    Harness h;
    h.send(request("GET", "/later"));
    REQUIRE(h.pump_until([&] { return h.waiting.size() == 1; }));
    Responder responder = h.waiting[0];
    h.session().abort("test aborts");
    REQUIRE(h.pump_until([&] { return h.closed == 1; }));
    CHECK(responder.start_stream(Response {}) == nullptr);
}
