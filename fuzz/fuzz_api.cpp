// Fuzz target: the owner API's request bodies and parameters (ApiServer),
// through its real routes and a real Store. The input's first byte picks the
// request: POST /api/messages (body), PATCH /api/messages/<id> (id and query,
// newline, body), GET /api/messages (query), GET /api/deliveries (query),
// GET or DELETE /api/messages/<id> (id and query), or GET /api/messages with
// the rest as the Authorization header. Every input starts from the same
// database: a copy of one made at start, holding a token, one received and
// one sent message. Nothing a client sends may cause a 5xx, an answer that
// is not JSON, or a message that reads back different from what was sent.
#include "fuzz_invariant.h"
#include "worker/api_server.h"
#include "protocol/api_token.h"
#include "http/router.h"
#include "worker/store.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sodium.h>
#include <string>
#include <string_view>
#include <unistd.h>

using namespace posta;
using posta::fuzz::fail;
using posta::fuzz::require;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view token = "posta_fuzz-token";
constexpr std::string_view own_url = "https://arne.example";
constexpr int64_t seeded_at_ms = 1795770000000;

// Captures the one answer of a request.
class Capture final : public ResponseSink {
public:
    void send_response(Response response) override { answer = std::move(response); }
    std::optional<Response> answer;
};

std::string template_dir;
std::string work_dir;

// Makes the database every input starts from, in `dir`.
void make_template(std::string const& dir)
{
    auto store = Store::open(dir);
    if (!store)
        fail(store.error().text().c_str());
    require(store->add_token(hash_api_token(token), seeded_at_ms).ok(), "add_token");
    InboundMessage inbound { "AAECAwQFBgcICQoLDA0ODw", "https://marcus.example", std::string(own_url), "2026-11-27T08:59:00Z",
        "Hello", "text/plain", "Hi Arne" };
    require(store->accept_inbound({ &inbound, 1 }, seeded_at_ms, EventSink(std::string(own_url), {})).ok(), "accept_inbound");
    OutgoingMessage outgoing { std::string(own_url), { "https://marcus.example", "http://[::1]:8080" }, "Re: Hello", "text/markdown",
        "*Hi* Marcus" };
    require(store->create_outgoing(outgoing, seeded_at_ms).ok(), "create_outgoing");
    require(store->checkpoint().ok(), "checkpoint");
}

void set_up()
{
    if (sodium_init() < 0)
        fail("sodium_init");
    // tmpfs when there is one: the store fsyncs at every commit.
    std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : fs::temp_directory_path().string();
    std::string root = base + "/posta-fuzz-api-" + std::to_string(getpid());
    template_dir = root + "/template";
    work_dir = root + "/work";
    fs::create_directories(template_dir);
    make_template(template_dir);
    static std::string const remove = root;
    std::atexit([] { std::error_code ignored; fs::remove_all(remove, ignored); });
}

// A fresh copy of the template database for one input.
Store fresh_store()
{
    std::error_code ignored;
    fs::remove_all(work_dir, ignored);
    fs::create_directories(work_dir);
    fs::copy_file(template_dir + "/inbox.db", work_dir + "/inbox.db");
    auto store = Store::open(work_dir);
    if (!store)
        fail(store.error().text().c_str());
    return std::move(store).value();
}

Response call(Router const& router, std::string method, std::string_view target, std::string body,
    std::optional<std::string> authorization = std::nullopt)
{
    Request request;
    request.method = std::move(method);
    request.target = std::string(target);
    size_t question = target.find('?');
    request.path = std::string(target.substr(0, question));
    if (question != std::string_view::npos)
        request.query = std::string(target.substr(question + 1));
    request.headers.add("Host", "arne.example");
    request.headers.add("Authorization", authorization.value_or("Bearer " + std::string(token)));
    if (!body.empty())
        request.headers.add("Content-Type", "application/json");
    request.body = std::move(body);
    request.client_address = "127.0.0.1:1";
    request.client_host = "127.0.0.1";

    Capture capture;
    router.dispatch(std::move(request), Responder(std::make_shared<ResponseSlot>(&capture)));
    require(capture.answer.has_value(), "an API route did not answer at once");
    return std::move(*capture.answer);
}

// Every answer: no 5xx, and JSON (with an error code when it is an error).
void check_answer(Response const& response)
{
    require(response.status >= 200 && response.status < 500, "the API answered a client's request with a 5xx or a 1xx");
    if (response.status == 204) {
        require(response.body.empty(), "a 204 has a body");
        return;
    }
    json doc = json::parse(response.body, nullptr, false);
    require(!doc.is_discarded(), "an API answer is not JSON");
    if (response.status >= 400)
        require(doc.is_object() && doc.contains("error") && doc["error"].is_string(), "an API error has no error code");
}

// A message the API accepted reads back as it was sent.
void check_sent(Router const& router, std::string const& body, Response const& accepted)
{
    json sent = json::parse(body);
    json answer = json::parse(accepted.body);
    require(answer.contains("id") && answer["id"].is_string(), "a 202 has no message id");
    Response read = call(router, "GET", "/api/messages/" + answer["id"].get<std::string>() + "?box=sent", {});
    check_answer(read);
    require(read.status == 200, "a message the API accepted cannot be read back");
    json message = json::parse(read.body);
    require(message["body"] == sent["body"], "a sent message's body reads back changed");
    require(message["subject"] == sent.value("subject", json("")), "a sent message's subject reads back changed");
    require(message["content_type"] == sent.value("content_type", json("text/plain")), "a sent message's content type reads back changed");
}

}

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    if (template_dir.empty())
        set_up();
    if (size == 0)
        return 0;
    std::string_view rest(reinterpret_cast<char const*>(data) + 1, size - 1);
    size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    std::string after = newline == std::string_view::npos ? std::string() : std::string(rest.substr(newline + 1));

    Store store = fresh_store();
    ApiServer::Settings settings;
    settings.own_url = std::string(own_url);
    settings.max_body_bytes = 4096;
    EventSink events(settings.own_url, {});
    ApiServer api(store, events, settings);
    Router router;
    api.add_routes(router);

    switch (data[0] % 7) {
    case 0: {
        std::string body(rest);
        Response r = call(router, "POST", "/api/messages", body);
        check_answer(r);
        if (r.status == 202)
            check_sent(router, body, r);
        break;
    }
    case 1:
        check_answer(call(router, "PATCH", "/api/messages/" + std::string(line), after));
        break;
    case 2:
        check_answer(call(router, "GET", "/api/messages?" + std::string(rest), {}));
        break;
    case 3:
        check_answer(call(router, "GET", "/api/deliveries?" + std::string(rest), {}));
        break;
    case 4:
        check_answer(call(router, "GET", "/api/messages/" + std::string(line), {}));
        break;
    case 5:
        check_answer(call(router, "DELETE", "/api/messages/" + std::string(line), {}));
        break;
    case 6:
        check_answer(call(router, "GET", "/api/messages", {}, std::string(rest)));
        break;
    }
    return 0;
}
