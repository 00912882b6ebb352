// Cookies, for the worker's owner sign-in (worker/sign_in.h): reading a
// cookie's values out of a request's Cookie fields and writing the one kind
// of Set-Cookie field the worker sends. Plain functions, no state.
// Refs: RFC 6265 sections 4.1 (Set-Cookie), 4.2 and 5.4 (Cookie).
#pragma once

#include "http/http_message.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace posta {

// Every value the request's Cookie fields give the cookie `name`, in the
// order sent (a browser sends the most specific path first; several fields
// are read in turn). Lenient, as a server should be with what browsers and
// tools send: the field is split at ';', spaces and tabs around names and
// values are dropped, a value in double quotes is taken without them, and a
// pair without '=' or with an empty name is skipped. Names compare exactly,
// as cookie names are case-sensitive. The views point into `headers`.
std::vector<std::string_view> cookie_values(Headers const& headers, std::string_view name);

// Whether a cookie may go over plain HTTP too, or only over TLS (Secure).
enum class CookieTransport { Any, TlsOnly };

// "name=value; HttpOnly; SameSite=Strict; Path=/; Max-Age=N", and
// "; Secure" for TlsOnly: a cookie scripts cannot read, that no other site's
// request carries, for the whole origin. Max-Age=0 removes it. `value` must
// be cookie-octets (base64url is).
std::string strict_cookie(std::string_view name, std::string_view value, int64_t max_age_seconds, CookieTransport);

}
