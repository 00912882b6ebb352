// WebApp: the routes of the owner web app (web/, built in by
// scripts/embed_web.py), served by each worker on its identity's own origin:
// index.html at "/", its assets under their hashed folder. Every answer
// carries the app's Content-Security-Policy and no-sniff, no-referrer headers.
#pragma once

#include <string_view>

namespace posta {

class Router;

// The page's policy: its own scripts and styles only, no inline script, no
// plugins, never framed (Refs: CSP Level 3).
inline constexpr std::string_view web_app_csp
    = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'";

void add_web_app_routes(Router& router);

// Whether an If-None-Match field value names `etag` (or is "*"), by the weak
// comparison that field uses (Refs: RFC 9110 section 13.1.2).
bool etag_matches(std::string_view if_none_match, std::string_view etag);

}
