// The identity document, GET /.well-known/posta (PROTOCOL.md, "Identity
// document"): how peers learn this identity's public key and inbox. The
// worker registers it on its Router at start; its body never changes while
// the worker runs, so it is built once.
#pragma once

#include "config/manifest.h"

#include <string>

namespace posta {

class Keys;
class Router;

// {"posta":1,"url":...,"name":...,"public_key":...,"inbox":url+"/inbox"}
std::string identity_document(IdentityEntry const&, Keys const&);

// GET (and so HEAD) /.well-known/posta, with Cache-Control: max-age=300
// and Access-Control-Allow-Origin: *; OPTIONS answers a CORS preflight.
void add_identity_document_route(Router&, IdentityEntry const&, Keys const&);

}
