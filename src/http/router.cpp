#include "router.h"

namespace posta {

void Router::add(std::string method, std::string path, Handler handler)
{
    m_routes.push_back(Route { std::move(method), std::move(path), false, std::move(handler) });
}

void Router::add_prefix(std::string method, std::string prefix, Handler handler)
{
    m_routes.push_back(Route { std::move(method), std::move(prefix), true, std::move(handler) });
}

std::vector<Router::Route const*> Router::match(std::string_view path) const
{
    std::vector<Route const*> exact;
    std::vector<Route const*> best_prefix;
    size_t best_length = 0;
    for (auto const& route : m_routes) {
        if (!route.prefix) {
            if (route.path == path)
                exact.push_back(&route);
            continue;
        }
        if (!path.starts_with(route.path))
            continue;
        if (route.path.size() > best_length) {
            best_prefix.clear();
            best_length = route.path.size();
        }
        if (route.path.size() == best_length)
            best_prefix.push_back(&route);
    }
    return exact.empty() ? best_prefix : exact;
}

Router::Route const* Router::find(std::string_view path, std::string_view method, bool& path_known) const
{
    Route const* chosen = nullptr;
    Route const* get = nullptr;
    bool exact = false;
    size_t best_length = 0;
    path_known = false;
    for (auto const& route : m_routes) {
        if (!route.prefix) {
            if (route.path != path)
                continue;
            if (!exact)
                chosen = get = nullptr; // exact routes win over every prefix
            exact = true;
        } else {
            if (exact || !path.starts_with(route.path) || route.path.size() < best_length)
                continue;
            if (route.path.size() > best_length)
                chosen = get = nullptr; // and a longer prefix over a shorter one
            best_length = route.path.size();
        }
        path_known = true;
        if (route.method == method)
            chosen = &route;
        if (route.method == "GET")
            get = &route;
    }
    return chosen || method != "HEAD" ? chosen : get;
}

void Router::dispatch(Request request, Responder responder) const
{
    if (m_gate) {
        if (auto answer = m_gate(request)) {
            responder.respond(std::move(*answer));
            return;
        }
    }
    bool path_known = false;
    if (Route const* route = find(request.path, request.method, path_known)) {
        route->handler(std::move(request), std::move(responder));
        return;
    }
    if (!path_known) {
        responder.respond(Response::error(404, "not_found", "no such resource: " + request.path));
        return;
    }

    auto routes = match(request.path);
    std::vector<std::string_view> methods;
    auto append = [&](std::string_view method) {
        for (auto known : methods) {
            if (known == method)
                return;
        }
        methods.push_back(method);
    };
    for (auto const* route : routes) {
        append(route->method);
        if (route->method == "GET")
            append("HEAD");
    }
    std::string allow;
    for (auto method : methods) {
        if (!allow.empty())
            allow += ", ";
        allow += method;
    }
    Response response = Response::error(405, "method_not_allowed",
        request.method + " is not allowed on " + request.path + "; allowed: " + allow);
    response.headers.set("Allow", allow);
    responder.respond(std::move(response));
}

}
