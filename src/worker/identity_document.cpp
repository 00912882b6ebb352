#include "identity_document.h"

#include "worker/keys.h"
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
    Response response;
    response.headers.set("Content-Type", "application/json");
    response.headers.set("Cache-Control", "max-age=300");
    response.body = identity_document(identity, keys);
    router.add("GET", "/.well-known/posta", [response](Request, Responder responder) {
        responder.respond(response);
    });
}

}
