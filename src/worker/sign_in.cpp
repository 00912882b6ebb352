// Why the Origin field and not a CSRF token: current browsers send Origin on
// every request that is not GET or HEAD, same-origin ones included, so the
// check costs the web app nothing, and a page of another site cannot forge
// or remove the field. SameSite=Strict already
// keeps the cookie off other sites' requests; the Origin check is the second
// lock, for browsers (or sibling subdomains: SameSite is per site, not per
// origin) that let it through.
#include "sign_in.h"

#include "common/host_key.h"
#include "protocol/base64url.h"

#include <array>
#include <sodium.h>

namespace posta {

Result<std::string> mint_login_code(Store& store, int64_t now_ms)
{
    std::string code = make_secret("");
    if (auto added = store.add_login_code(hash_secret(code), now_ms, now_ms + login_code_lifetime_ms); !added)
        return added.error();
    return code;
}

NewSession make_session(int64_t now_ms)
{
    NewSession session;
    session.secret = make_secret("");
    session.hash = hash_secret(session.secret);
    std::array<unsigned char, 16> id {};
    randombytes_buf(id.data(), id.size());
    session.record.id = base64url_encode(id);
    session.record.created_at_ms = now_ms;
    session.record.expires_at_ms = now_ms + session_lifetime_ms;
    return session;
}

std::string session_cookie(NewSession const& session, CookieTransport transport)
{
    return strict_cookie(session_cookie_name, session.secret, session_lifetime_ms / 1000, transport);
}

std::string ended_session_cookie(CookieTransport transport)
{
    return strict_cookie(session_cookie_name, "", 0, transport);
}

CookieTransport cookie_transport(Request const& request)
{
    return request.secure ? CookieTransport::TlsOnly : CookieTransport::Any;
}

bool changes_state(std::string_view method)
{
    return method != "GET" && method != "HEAD" && method != "OPTIONS";
}

bool is_origin_of(std::string_view origin, std::string_view own_url)
{
    // An origin is scheme "://" host [":" port] and nothing after it; the
    // identity URL parser would also take a "/".
    size_t authority = origin.find("://");
    if (authority == std::string_view::npos || origin.find('/', authority + 3) != std::string_view::npos)
        return false;
    auto parsed = parse_identity_url(origin);
    return parsed && parsed->canonical == own_url;
}

std::optional<Response> check_origin(Request const& request, std::string_view own_url, OriginRule rule)
{
    size_t given = request.headers.count("Origin");
    if (given == 0 && rule == OriginRule::IfPresent)
        return std::nullopt;
    if (given == 1 && is_origin_of(*request.headers.get("Origin"), own_url))
        return std::nullopt;
    std::string why = given == 0 ? "it has no Origin" : "its Origin is not " + std::string(own_url);
    return Response::error(403, "cross_origin",
        "this request is refused because " + why
            + ": the owner API takes a browser's requests only from the identity's own pages "
              "(tools: use Authorization: Bearer)");
}

}
