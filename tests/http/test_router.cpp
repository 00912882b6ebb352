// The router's table, the Responder contract and the message helpers,
// without sockets: a test sink stands in for the HTTP session.
#include "http/http_message.h"
#include "http/responder.h"
#include "http/response_serializer.h"
#include "http/router.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

using namespace posta;

namespace {

struct Sink final : ResponseSink {
    std::vector<Response> answers;
    void send_response(Response response) override { answers.push_back(std::move(response)); }
};

Request request(std::string method, std::string path)
{
    Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.target = r.path;
    return r;
}

Response route(Router const& router, std::string method, std::string path)
{
    Sink sink;
    router.dispatch(request(std::move(method), std::move(path)), Responder(std::make_shared<ResponseSlot>(&sink)));
    REQUIRE(sink.answers.size() == 1);
    return sink.answers.front();
}

Handler answer(int status, std::string body)
{
    return [status, body](Request, Responder responder) {
        Response r;
        r.status = status;
        r.body = body;
        responder.respond(std::move(r));
    };
}

}

TEST_CASE("an unknown path gets a 404 JSON error not_found")
{
    Router router;
    router.add("GET", "/.well-known/posta", answer(200, "doc"));
    Response r = route(router, "GET", "/nope");
    CHECK(r.status == 404);
    CHECK(r.headers.get("content-type") == "application/json");
    auto body = nlohmann::json::parse(r.body);
    CHECK(body["error"] == "not_found");
    CHECK(body["message"].is_string());
}

TEST_CASE("another method on a known path gets 405 with Allow")
{
    Router router;
    router.add("GET", "/.well-known/posta", answer(200, "doc"));
    Response r = route(router, "POST", "/.well-known/posta");
    CHECK(r.status == 405);
    CHECK(r.headers.get("Allow") == "GET, HEAD");
    CHECK(nlohmann::json::parse(r.body)["error"] == "method_not_allowed");
}

TEST_CASE("HEAD is routed to the GET handler")
{
    Router router;
    router.add("GET", "/doc", answer(200, "doc"));
    Response r = route(router, "HEAD", "/doc");
    CHECK(r.status == 200);
    CHECK(r.body == "doc"); // the session drops the body, keeping its length
}

TEST_CASE("exact routes win over prefixes, and longer prefixes over shorter ones")
{
    Router router;
    router.add_prefix("GET", "/api/", answer(200, "api"));
    router.add_prefix("GET", "/api/messages/", answer(200, "message"));
    router.add("GET", "/api/messages/special", answer(200, "special"));
    router.add("POST", "/api/messages/", answer(202, "post"));
    CHECK(route(router, "GET", "/api/deliveries").body == "api");
    CHECK(route(router, "GET", "/api/messages/abc").body == "message");
    CHECK(route(router, "GET", "/api/messages/special").body == "special");
    Response r = route(router, "DELETE", "/api/messages/abc");
    CHECK(r.status == 405);
    CHECK(r.headers.get("Allow") == "GET, HEAD");
}

TEST_CASE("the best match does not depend on the order routes were added in")
{
    Router router;
    router.add("POST", "/api/messages/special", answer(202, "post special"));
    router.add_prefix("GET", "/api/messages/", answer(200, "message"));
    router.add_prefix("GET", "/api/", answer(200, "api"));
    CHECK(route(router, "GET", "/api/messages/abc").body == "message");
    CHECK(route(router, "GET", "/api/other").body == "api");
    CHECK(route(router, "HEAD", "/api/messages/abc").body == "message");
    // An exact path hides every prefix, whatever its methods.
    Response r = route(router, "GET", "/api/messages/special");
    CHECK(r.status == 405);
    CHECK(r.headers.get("Allow") == "POST");
    router.add_prefix("GET", "/api/messages/spec", answer(200, "longer prefix"));
    CHECK(route(router, "GET", "/api/messages/special").status == 405);
    CHECK(route(router, "GET", "/api/messages/spectre").body == "longer prefix");
}

TEST_CASE("a Responder answers once; copies share the answer")
{
    Sink sink;
    Responder first(std::make_shared<ResponseSlot>(&sink));
    Responder copy = first;
    CHECK(first.pending());
    first.respond(Response::error(400, "x", "y"));
    CHECK(!copy.pending());
    copy.respond(Response::error(500, "z", "w"));
    REQUIRE(sink.answers.size() == 1);
    CHECK(sink.answers[0].status == 400);
}

TEST_CASE("a prepared answer reaches a sink that only takes Responses as its Response")
{
    Response doc;
    doc.headers.set("Content-Type", "application/json");
    doc.body = "{}";
    PreparedResponse prepared(doc);
    Router router;
    router.add("GET", "/doc", [&prepared](Request, Responder responder) { responder.respond(prepared); });
    Response r = route(router, "GET", "/doc");
    CHECK(r.status == 200);
    CHECK(r.headers.get("Content-Type") == "application/json");
    CHECK(r.body == "{}");
}

TEST_CASE("a Responder dropped without answering answers 500")
{
    Sink sink;
    {
        Responder dropped(std::make_shared<ResponseSlot>(&sink));
    }
    REQUIRE(sink.answers.size() == 1);
    CHECK(sink.answers[0].status == 500);
    CHECK(nlohmann::json::parse(sink.answers[0].body)["error"] == "internal_error");
}

TEST_CASE("a detached Responder drops its answer")
{
    Sink sink;
    auto slot = std::make_shared<ResponseSlot>(&sink);
    Responder responder(slot);
    slot->detach();
    CHECK(!responder.pending());
    responder.respond(Response::error(200, "a", "b"));
    slot.reset();
    CHECK(sink.answers.empty());
}

TEST_CASE("Response::error has the protocol's error shape")
{
    Response r = Response::error(421, "misdirected_request", "wrong host \"x\"");
    CHECK(r.status == 421);
    auto body = nlohmann::json::parse(r.body);
    CHECK(body.size() == 2);
    CHECK(body["error"] == "misdirected_request");
    CHECK(body["message"] == "wrong host \"x\"");
}

TEST_CASE("Response::json never throws on invalid UTF-8")
{
    Response r = Response::json(200, nlohmann::json { { "name", std::string("\xff\xfe") } });
    CHECK(r.status == 200);
    CHECK(!r.body.empty());
}

TEST_CASE("header names compare case-insensitively and keep their spelling")
{
    Headers headers;
    headers.add("Content-Type", "a");
    headers.add("X-Thing", "1");
    headers.add("x-thing", "2");
    CHECK(headers.get("content-type") == "a");
    CHECK(headers.count("X-THING") == 2);
    CHECK(headers.get("X-Thing") == "1");
    headers.set("x-THING", "3");
    CHECK(headers.count("x-thing") == 1);
    CHECK(headers.get("x-thing") == "3");
    CHECK(!headers.get("missing"));
    CHECK(headers.begin()->first == "Content-Type");
}
