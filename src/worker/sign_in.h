// Sign-in of an identity's owner from a browser (posta-protocol(7),
// "Sessions"), in the worker (and in `posta-server login`): one-time sign-in
// codes, the sessions they are traded for, the session cookie, and the
// Origin check that keeps other sites from using the cookie (CSRF). The
// ApiServer's routes use these; the Store keeps only hashes of the secrets.
#pragma once

#include "common/result.h"
#include "http/cookie.h"
#include "http/http_message.h"
#include "protocol/api_token.h"
#include "worker/store.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace posta {

// How long a code of `posta-server login` can be redeemed.
constexpr int64_t login_code_lifetime_ms = 10 * 60 * 1000;
// How long a session lasts from its sign-in; it is not extended by use.
constexpr int64_t session_lifetime_ms = 30LL * 24 * 3600 * 1000;
constexpr std::string_view session_cookie_name = "posta_session";

// Makes a sign-in code (a secret of 256 random bits, base64url, so it can
// stand in a URL's fragment), stores its hash valid login_code_lifetime_ms
// from `now_ms`, and returns the code: it is shown once and kept nowhere.
// sodium_init() first.
Result<std::string> mint_login_code(Store&, int64_t now_ms);

// A session to be stored: the cookie's secret, its hash, and the record
// (a fresh random id, created now, expiring session_lifetime_ms later).
// sodium_init() first.
struct NewSession {
    std::string secret;
    TokenHash hash {};
    SessionRecord record;
};
NewSession make_session(int64_t now_ms);

// The Set-Cookie value that gives the browser the session, and the one that
// removes it (an empty value, Max-Age=0). TlsOnly on a request that came
// over TLS: the cookie then never travels in the clear.
std::string session_cookie(NewSession const&, CookieTransport);
std::string ended_session_cookie(CookieTransport);
CookieTransport cookie_transport(Request const&);

// Whether requests with `method` may change something: all but GET, HEAD
// and OPTIONS. These need the Origin check when only a cookie vouches for
// them.
bool changes_state(std::string_view method);

// Whether an Origin field's value is the origin of the identity at
// `own_url` (canonical: scheme://host[:port], default port left out): the
// same scheme, host and port, whatever the case and whether a default port
// is written. "null", a path, a second origin or anything else is not.
bool is_origin_of(std::string_view origin, std::string_view own_url);

enum class OriginRule {
    Required,  // a request with no Origin is refused (a cookie request that changes state)
    IfPresent, // a request with no Origin passes (a sign-in: tools send none)
};
// nullopt when the request's Origin passes under `rule`; otherwise the
// answer: 403 {"error": "cross_origin", ...}. Origin given more than once
// never passes. Refs: RFC 6454 section 7; RFC 9110 section 9.2.1.
std::optional<Response> check_origin(Request const&, std::string_view own_url, OriginRule);

}
