#include "identity_document.h"

#include "worker/keys.h"
#include "http/response_serializer.h"
#include "http/router.h"

#include <nlohmann/json.hpp>

namespace posta {

std::string identity_document(IdentityEntry const& identity, Keys const& keys)
{
    // The manifest's url is canonical: scheme://host[:port], no trailing slash.
    // ordered_json keeps "posta" first, as PROTOCOL.md writes it.
    nlohmann::ordered_json doc {
        { "posta", 1 },
        { "url", identity.url },
        { "name", identity.name },
        { "public_key", keys.public_key_b64() },
        { "inbox", identity.url + "/inbox" },
    };
    return doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void add_identity_document_route(Router& router, IdentityEntry const& identity, Keys const& keys)
{
    // The document is public and needs no credentials, so any site's page
    // may read it (a web client looking up a recipient): CORS for all
    // origins, without Allow-Credentials. Refs: WHATWG Fetch, "CORS protocol".
    Response response;
    response.headers.set("Content-Type", "application/json");
    response.headers.set("Cache-Control", "max-age=300");
    response.headers.set("Access-Control-Allow-Origin", "*");
    response.body = identity_document(identity, keys);
    // Laid out once: peers fetch it more than anything else we serve.
    router.add("GET", "/.well-known/posta",
        [prepared = PreparedResponse(std::move(response))](Request, Responder responder) {
            responder.respond(prepared);
        });
    // The preflight a browser sends before a GET with headers beyond the
    // CORS-safelisted ones. A "*" in Allow-Headers means any header for a
    // request without credentials, which is what the GET is.
    Response preflight { 204, {}, {} };
    preflight.headers.set("Access-Control-Allow-Origin", "*");
    preflight.headers.set("Access-Control-Allow-Methods", "GET, OPTIONS");
    preflight.headers.set("Access-Control-Allow-Headers", "*");
    preflight.headers.set("Access-Control-Max-Age", "86400");
    router.add("OPTIONS", "/.well-known/posta",
        [prepared = PreparedResponse(std::move(preflight))](Request, Responder responder) {
            responder.respond(prepared);
        });
}

}
