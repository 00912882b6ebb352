#include "web_app.h"

#include "http/router.h"
#include "worker/web_assets.h"

#include <string>

namespace posta {

namespace {

std::string_view without_weak_prefix(std::string_view tag)
{
    return tag.starts_with("W/") ? tag.substr(2) : tag;
}

// 200 with the file, or 304 when the client holds this very version.
Response asset_response(WebAsset const& asset, Request const& request, char const* cache_control)
{
    Response response;
    auto if_none_match = request.headers.get("If-None-Match");
    if (if_none_match && etag_matches(*if_none_match, asset.etag)) {
        response.status = 304;
    } else {
        response.headers.set("Content-Type", std::string(asset.content_type));
        response.body = std::string(asset.body);
    }
    response.headers.set("ETag", std::string(asset.etag));
    response.headers.set("Cache-Control", cache_control);
    response.headers.set("Content-Security-Policy", std::string(web_app_csp));
    response.headers.set("X-Content-Type-Options", "nosniff");
    response.headers.set("Referrer-Policy", "no-referrer");
    return response;
}

}

bool etag_matches(std::string_view if_none_match, std::string_view etag)
{
    std::string_view rest = if_none_match;
    while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view entry = trim_ows(rest.substr(0, comma));
        if (entry == "*" || (!entry.empty() && without_weak_prefix(entry) == without_weak_prefix(etag)))
            return true;
        if (comma == std::string_view::npos)
            break;
        rest.remove_prefix(comma + 1);
    }
    return false;
}

void add_web_app_routes(Router& router)
{
    WebBundle const& bundle = web_bundle();
    // The page names this build's assets, so it is checked on every view
    // (no-cache revalidates; a 304 costs no body). The assets never change
    // under their folder's name and are kept for a year.
    router.add("GET", "/", [&bundle](Request request, Responder responder) {
        responder.respond(asset_response(bundle.index, request, "no-cache"));
    });
    router.add_prefix("GET", std::string(bundle.folder), [&bundle](Request request, Responder responder) {
        std::string_view name = std::string_view(request.path).substr(bundle.folder.size());
        for (WebAsset const& asset : bundle.assets) {
            if (asset.name == name) {
                responder.respond(asset_response(asset, request, "public, max-age=31536000, immutable"));
                return;
            }
        }
        responder.respond(Response::error(404, "not_found", "no such file of the web app"));
    });
}

}
