// Router: the worker's table from (method, path) to handler. HttpSession
// hands it each complete request with a Responder; handlers answer through
// the Responder, at once or later (after a network fetch, say). Routes are
// exact paths or path prefixes ("/api/messages/" for "/api/messages/<id>").
#pragma once

#include "http/http_message.h"
#include "http/responder.h"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace posta {

// A handler owns its Request and must answer through the Responder exactly
// once, now or later; it must not throw (a throw is answered with 500).
using Handler = std::function<void(Request, Responder)>;
// Looks at every request before the routes do; an answer it gives is the
// request's, and no route sees it. It answers at once and must not throw.
using Gate = std::function<std::optional<Response>(Request const&)>;

class Router {
public:
    // `method` is a method name as llhttp spells it ("GET", "POST", ...).
    // A GET route also answers HEAD (HttpSession then sends no body).
    void add(std::string method, std::string path, Handler);
    // Matches every path that starts with `prefix`; exact routes win over
    // prefixes, and a longer prefix over a shorter one.
    void add_prefix(std::string method, std::string prefix, Handler);
    // At most one gate; a later call replaces it.
    void set_gate(Gate gate) { m_gate = std::move(gate); }

    // Answers an unknown path with 404 not_found and a known path with
    // another method with 405 and Allow.
    void dispatch(Request, Responder) const;

private:
    struct Route {
        std::string method;
        std::string path;
        bool prefix = false;
        Handler handler;
    };
    // The routes of the best-matching path (empty: no path matched).
    std::vector<Route const*> match(std::string_view path) const;
    // The route of the best-matching path for `method` (HEAD falls back to
    // GET), in one pass and without allocating: match() and a choice among
    // its routes. `path_known` says whether any route matched the path.
    Route const* find(std::string_view path, std::string_view method, bool& path_known) const;

    std::vector<Route> m_routes;
    Gate m_gate;
};

}
