// The web app's routes and conditional requests, without sockets: the built-in
// bundle is routed and answered as a browser would ask for it.
#include "http/http_message.h"
#include "http/responder.h"
#include "http/router.h"
#include "worker/web_app.h"
#include "worker/web_assets.h"

#include <doctest/doctest.h>
#include <string>

using namespace posta;

namespace {

struct Sink final : ResponseSink {
    std::vector<Response> answers;
    void send_response(Response response) override { answers.push_back(std::move(response)); }
};

Response get(std::string path, std::string if_none_match = {})
{
    Router router;
    add_web_app_routes(router);
    Request request;
    request.method = "GET";
    request.path = path;
    request.target = path;
    if (!if_none_match.empty())
        request.headers.add("If-None-Match", if_none_match);
    Sink sink;
    router.dispatch(std::move(request), Responder(std::make_shared<ResponseSlot>(&sink)));
    REQUIRE(sink.answers.size() == 1);
    return sink.answers.front();
}

}

TEST_CASE("If-None-Match matches a listed tag, weakly, or any tag for *")
{
    CHECK(etag_matches("\"abc\"", "\"abc\""));
    CHECK(etag_matches("W/\"abc\"", "\"abc\""));
    CHECK(etag_matches("\"x\", \"abc\"", "\"abc\""));
    CHECK(etag_matches("\"x\",W/\"abc\" ", "\"abc\""));
    CHECK(etag_matches("*", "\"abc\""));
    CHECK_FALSE(etag_matches("\"abcd\"", "\"abc\""));
    CHECK_FALSE(etag_matches("abc", "\"abc\""));
    CHECK_FALSE(etag_matches("", "\"abc\""));
    CHECK_FALSE(etag_matches(" , ", "\"abc\""));
}

TEST_CASE("the page names this build's asset folder and every asset is served from it")
{
    WebBundle const& bundle = web_bundle();
    Response page = get("/");
    CHECK(page.status == 200);
    CHECK(page.headers.get("Content-Security-Policy") == web_app_csp);
    CHECK(page.headers.get("Cache-Control") == "no-cache");
    CHECK(page.body.find(std::string(bundle.folder) + "app.js") != std::string::npos);
    CHECK(page.body.find("@APP@") == std::string::npos);
    for (WebAsset const& asset : bundle.assets) {
        Response file = get(std::string(bundle.folder) + std::string(asset.name));
        CHECK(file.status == 200);
        CHECK(file.body == asset.body);
        CHECK(file.headers.get("Content-Type") == asset.content_type);
        CHECK(file.headers.get("X-Content-Type-Options") == "nosniff");
    }
    CHECK(get(std::string(bundle.folder) + "missing.js").status == 404);
    CHECK(get(std::string(bundle.folder)).status == 404);
}

TEST_CASE("a client holding the current version gets 304 without a body, an older one the file")
{
    Response page = get("/");
    auto etag = page.headers.get("ETag");
    REQUIRE(etag);
    Response same = get("/", std::string(*etag));
    CHECK(same.status == 304);
    CHECK(same.body.empty());
    CHECK(same.headers.get("ETag") == *etag);
    CHECK(same.headers.get("Content-Security-Policy") == web_app_csp);
    CHECK(get("/", "\"an-old-version\"").status == 200);
}
