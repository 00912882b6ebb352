// HttpsRedirect: what a worker answers to a plain-HTTP request for its
// identity when the identity's URL is https. `GET /.well-known/acme-
// challenge/<token>` is served from <state_dir>/<slug>/acme-challenge/
// (the webroot of an ACME client: dehydrated, lacme, certbot's webroot
// plugin pointed there), so that a certificate can be had before TLS
// works; anything else gets 308 to the same path and query under the https
// URL. Installed as the worker's Router gate; it owns two strings.
#pragma once

#include "http/http_message.h"

#include <optional>
#include <string>
#include <string_view>

namespace posta {

// The largest challenge file served: an HTTP-01 key authorization is under
// a hundred bytes (RFC 8555 section 8.3).
inline constexpr size_t max_challenge_bytes = 4096;

class HttpsRedirect {
public:
    // `https_url` is the identity's canonical URL ("https://arne.example");
    // `challenge_dir` the folder its challenge files are read from.
    HttpsRedirect(std::string https_url, std::string challenge_dir);

    // nullopt for a request that came over TLS (ours, or a trusted front's:
    // Request::secure), which is served as usual; otherwise the answer.
    std::optional<Response> answer(Request const& request) const;

private:
    std::string m_https_url;
    std::string m_challenge_dir;
};

// Whether `token` may name a challenge file: 1 to 255 characters of the
// base64url alphabet (RFC 8555 section 8.3), so no "/", ".." or "%".
bool valid_challenge_token(std::string_view token);

}
