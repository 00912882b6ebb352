// RequestParser: the events a connection's bytes produce, one request at a
// time, and the bounds on heads and bodies.
#include "http/request_parser.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

using Event = RequestParser::Event;

RequestParser::Limits const limits { 256, 64 };

// Feeds `input` as a session would: through the head, into the body, to
// the end of the message; returns the last event and what is left over.
struct Run {
    Event event = Event::NeedMore;
    std::string_view rest;
};

Run run_one(RequestParser& parser, std::string_view input)
{
    Run out { Event::NeedMore, input };
    while (true) {
        auto step = parser.parse(out.rest);
        out.rest.remove_prefix(step.consumed);
        out.event = step.event;
        if (step.event == Event::HeadComplete) {
            parser.read_body();
            continue;
        }
        if (step.event == Event::NeedMore && (!out.rest.empty() || parser.must_parse()))
            continue;
        return out;
    }
}

}

TEST_CASE("a GET is reported at the end of its head, then complete without more bytes")
{
    RequestParser parser(limits);
    std::string_view input = "GET /x?y HTTP/1.1\r\nHost: arne.test\r\nX-Empty:\r\nX-Pad:  a b \r\n\r\n";
    auto step = parser.parse(input);
    CHECK(step.event == Event::HeadComplete);
    CHECK(step.consumed == input.size());
    CHECK(parser.message_begun());
    Request& r = parser.request();
    CHECK(r.method == "GET");
    CHECK(r.target == "/x?y");
    CHECK(r.http_minor == 1);
    CHECK(r.keep_alive);
    CHECK(r.headers.get("X-Empty") == "");
    CHECK(r.headers.get("X-Pad") == "a b");
    CHECK_FALSE(parser.framing().chunked);
    CHECK_FALSE(parser.framing().content_length);
    parser.read_body();
    CHECK(parser.must_parse());
    CHECK(parser.parse({}).event == Event::MessageComplete);
}

TEST_CASE("pipelined requests come one at a time, each after next_request")
{
    RequestParser parser(limits);
    std::string input = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    auto first = run_one(parser, input);
    REQUIRE(first.event == Event::MessageComplete);
    CHECK(parser.take_request().target == "/1");
    CHECK(first.rest.size() == input.size() / 2);
    parser.next_request();
    CHECK_FALSE(parser.message_begun());
    auto second = run_one(parser, first.rest);
    REQUIRE(second.event == Event::MessageComplete);
    CHECK(parser.take_request().target == "/2");
    CHECK(second.rest.empty());
}

TEST_CASE("a head that arrives in pieces needs more until its end")
{
    RequestParser parser(limits);
    auto step = parser.parse("GET / HT");
    CHECK(step.event == Event::NeedMore);
    CHECK(step.consumed == 8);
    CHECK(parser.message_begun());
    CHECK(parser.parse("TP/1.1\r\nHost: a\r\n\r\n").event == Event::HeadComplete);
}

TEST_CASE("a head over max_head_bytes is 431, and nothing past the bound is parsed")
{
    RequestParser parser(limits);
    std::string input = "GET / HTTP/1.1\r\nX-Long: " + std::string(1000, 'a') + "\r\n\r\n";
    auto step = parser.parse(input);
    CHECK(step.event == Event::Rejected);
    CHECK(step.consumed == limits.max_head_bytes + 1);
    CHECK(parser.rejection().status == 431);
}

TEST_CASE("a Content-Length body is collected whole")
{
    RequestParser parser(limits);
    auto run = run_one(parser, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    REQUIRE(run.event == Event::MessageComplete);
    CHECK(parser.framing().content_length == 5u);
    CHECK(parser.take_request().body == "hello");
}

TEST_CASE("a chunked body is de-chunked")
{
    RequestParser parser(limits);
    auto run = run_one(parser, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n");
    REQUIRE(run.event == Event::MessageComplete);
    CHECK(parser.framing().chunked);
    CHECK(parser.take_request().body == "hello");
}

TEST_CASE("a chunked body over max_body_bytes is 413")
{
    RequestParser parser(limits);
    std::string chunk(40, 'x');
    auto run = run_one(parser, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n" + chunk
            + "\r\n28\r\n" + chunk + "\r\n0\r\n\r\n");
    REQUIRE(run.event == Event::Rejected);
    CHECK(parser.rejection().status == 413);
    CHECK(parser.rejection().code == "body_too_large");
}

TEST_CASE("malformed input is 400 with llhttp's reason")
{
    RequestParser parser(limits);
    auto step = parser.parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n");
    CHECK(step.event == Event::Rejected);
    CHECK(parser.rejection().status == 400);
    CHECK(parser.rejection().message.starts_with("malformed request: "));
}

TEST_CASE("Connection: close and HTTP/1.0 without keep-alive end the connection after the answer")
{
    RequestParser closing(limits);
    REQUIRE(closing.parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").event == Event::HeadComplete);
    CHECK_FALSE(closing.request().keep_alive);
    RequestParser old(limits);
    REQUIRE(old.parse("GET / HTTP/1.0\r\n\r\n").event == Event::HeadComplete);
    CHECK(old.request().http_minor == 0);
    CHECK_FALSE(old.request().keep_alive);
}

TEST_CASE("trailer fields never reach the request's headers")
{
    RequestParser parser(limits);
    auto run = run_one(parser, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "2\r\nhi\r\n0\r\nAuthorization: Bearer x\r\nPosta-Signature: ed25519=y\r\nX-Empty:\r\n\r\n");
    REQUIRE(run.event == Event::MessageComplete);
    Request r = parser.take_request();
    CHECK(r.body == "hi");
    CHECK(r.headers.count("Authorization") == 0);
    CHECK(r.headers.count("Posta-Signature") == 0);
    CHECK(r.headers.count("X-Empty") == 0);
    CHECK(r.headers.get("Host") == "a");
}

TEST_CASE("a trailer larger than max_head_bytes is 413 before it ends")
{
    RequestParser parser(limits);
    auto run = run_one(parser, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: "
            + std::string(limits.max_head_bytes, 'a'));
    REQUIRE(run.event == Event::Rejected);
    CHECK(parser.rejection().status == 413);
}

TEST_CASE("a chunk extension beyond max_head_bytes is 413, however small the body")
{
    RequestParser parser(limits);
    std::string extension = ";ext=" + std::string(limits.max_head_bytes, 'a');
    auto run = run_one(parser, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1" + extension + "\r\nx\r\n");
    REQUIRE(run.event == Event::Rejected);
    CHECK(parser.rejection().status == 413);
    CHECK(parser.rejection().message.find("chunked framing") != std::string::npos);
}

TEST_CASE("a chunk size padded with zeros beyond max_head_bytes is 413")
{
    RequestParser parser(limits);
    auto run = run_one(parser, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + std::string(limits.max_head_bytes + 1, '0') + "1\r\nx\r\n0\r\n\r\n");
    REQUIRE(run.event == Event::Rejected);
    CHECK(parser.rejection().status == 413);
}

TEST_CASE("ordinary chunk framing is well within the bound, and each request has its own")
{
    RequestParser parser(limits);
    std::string body;
    for (int i = 0; i < 6; ++i)
        body += "a;x=1\r\n0123456789\r\n"; // 17 bytes of framing per chunk
    std::string request = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body + "0\r\n\r\n";
    for (int round = 0; round < 3; ++round) {
        auto run = run_one(parser, request);
        REQUIRE(run.event == Event::MessageComplete);
        CHECK(parser.take_request().body.size() == 60);
        parser.next_request();
    }
}
