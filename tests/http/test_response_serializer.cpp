// serialize_response: framing is the server's alone, HEAD keeps GET's
// length, streams end with the connection, and no header can be forged.
// PreparedResponse: the same bytes, laid out once.
#include "http/response_serializer.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

Response hello()
{
    Response r;
    r.headers.add("Content-Type", "text/plain");
    r.headers.add("Date", "Tue, 01 Dec 2026 19:00:00 GMT");
    r.body = "hello";
    return r;
}

}

TEST_CASE("a response has its status line, headers, Content-Length and body")
{
    CHECK(serialize_response(hello(), {}, "peer") == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
          "Date: Tue, 01 Dec 2026 19:00:00 GMT\r\nContent-Length: 5\r\n\r\nhello");
}

TEST_CASE("a response without a Date gets one")
{
    Response r;
    r.status = 404;
    std::string out = serialize_response(r, {}, "peer");
    CHECK(out.starts_with("HTTP/1.1 404 Not Found\r\nDate: "));
    CHECK(out.find(" GMT\r\n") != std::string::npos);
}

TEST_CASE("the handler's framing headers are replaced by ours")
{
    Response r = hello();
    r.headers.add("Content-Length", "999");
    r.headers.add("Transfer-Encoding", "chunked");
    r.headers.add("Connection", "keep-alive");
    ResponseFraming framing;
    framing.keep_alive = false;
    std::string out = serialize_response(r, framing, "peer");
    CHECK(out.find("999") == std::string::npos);
    CHECK(out.find("chunked") == std::string::npos);
    CHECK(out.find("keep-alive") == std::string::npos);
    CHECK(out.find("Content-Length: 5\r\nConnection: close\r\n\r\nhello") != std::string::npos);
}

TEST_CASE("a header with a line break is dropped, not sent")
{
    Response r = hello();
    r.headers.add("X-Evil", "a\r\nSet-Cookie: b");
    r.headers.add("X-Ok", "fine");
    std::string out = serialize_response(r, {}, "peer");
    CHECK(out.find("Set-Cookie") == std::string::npos);
    CHECK(out.find("X-Evil") == std::string::npos);
    CHECK(out.find("X-Ok: fine\r\n") != std::string::npos);
}

TEST_CASE("HEAD gets GET's Content-Length and no body")
{
    ResponseFraming framing;
    framing.head_request = true;
    std::string out = serialize_response(hello(), framing, "peer");
    CHECK(out.ends_with("Content-Length: 5\r\n\r\n"));
}

TEST_CASE("204 and 1xx carry neither Content-Length nor body")
{
    Response r = hello();
    r.status = 204;
    std::string out = serialize_response(r, {}, "peer");
    CHECK(out.find("Content-Length") == std::string::npos);
    CHECK(out.ends_with("\r\n\r\n"));
}

TEST_CASE("a stream's head has no Content-Length; its body is what follows")
{
    ResponseFraming framing;
    framing.body = ResponseFraming::Body::UntilClose;
    framing.keep_alive = false;
    std::string out = serialize_response(hello(), framing, "peer");
    CHECK(out.find("Content-Length") == std::string::npos);
    CHECK(out.ends_with("Connection: close\r\n\r\nhello"));
}

TEST_CASE("an HTTP/1.0 client is told keep-alive; an HTTP/1.1 client need not be")
{
    ResponseFraming old;
    old.http_minor = 0;
    CHECK(serialize_response(hello(), old, "peer").find("Connection: keep-alive\r\n") != std::string::npos);
    CHECK(serialize_response(hello(), {}, "peer").find("Connection:") == std::string::npos);
}

TEST_CASE("a prepared response serializes to the bytes serialize_response gives")
{
    Response with_date = hello();
    with_date.headers.add("X-Evil", "a\r\nSet-Cookie: b");
    with_date.headers.add("Content-Length", "999");
    Response without_date;
    without_date.headers.set("Content-Type", "application/json");
    without_date.headers.set("Access-Control-Allow-Origin", "*");
    without_date.body = "{\"posta\":1}";
    Response no_content { 204, {}, {} };
    no_content.headers.set("Access-Control-Max-Age", "86400");
    for (Response const& response : { with_date, without_date, no_content }) {
        PreparedResponse prepared(response);
        for (int variant = 0; variant < 16; ++variant) {
            ResponseFraming framing;
            framing.body = variant & 1 ? ResponseFraming::Body::UntilClose : ResponseFraming::Body::ContentLength;
            framing.keep_alive = (variant & 2) == 0;
            framing.http_minor = variant & 4 ? 0 : 1;
            framing.head_request = (variant & 8) != 0;
            CAPTURE(response.status);
            CAPTURE(variant);
            // Date is the clock's: equal unless a second turned in between.
            std::string expected = serialize_response(response, framing, "peer");
            std::string got = prepared.serialize(framing);
            if (got != expected)
                expected = serialize_response(response, framing, "peer");
            CHECK(got == expected);
        }
    }
}
