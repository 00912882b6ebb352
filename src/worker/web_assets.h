// The owner web app's files (web/), built into the binary by
// scripts/embed_web.py: index.html, and the assets it loads from one folder
// whose name is a hash of them all. Immutable, shared by every worker.
#pragma once

#include <span>
#include <string_view>

namespace posta {

struct WebAsset {
    std::string_view name;         // "app.js"
    std::string_view content_type; // "text/javascript; charset=utf-8"
    std::string_view etag;         // a strong entity tag, quotes included
    std::string_view body;
};

struct WebBundle {
    std::string_view folder;       // "/_app/<hash>/": the assets' path prefix
    WebAsset const& index;         // served at "/"
    std::span<WebAsset const> assets;
};

WebBundle const& web_bundle();

}
