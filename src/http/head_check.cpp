#include "head_check.h"

#include "common/host_key.h"
#include "http/request_target.h"

#include <string>

namespace posta {

namespace {

bool expects_body(BodyFraming const& framing)
{
    return framing.chunked || framing.content_length.value_or(0) > 0;
}

Rejection bad_request(std::string message) { return Rejection { 400, "bad_request", std::move(message) }; }

}

std::optional<Rejection> check_head(Request& request, BodyFraming const& framing, HeadRules const& rules)
{
    if (request.http_major != 1)
        return Rejection { 505, "http_version_not_supported", "this server speaks HTTP/1.1 and HTTP/1.0" };
    auto target = split_request_target(request.target);
    if (!target)
        return bad_request("the request target must be a path or an http(s) URL");
    request.path = std::move(target->path);
    request.query = std::move(target->query);

    // Refs: RFC 9112 section 3.2: exactly one Host in HTTP/1.1; an absolute
    // target's authority replaces it.
    size_t hosts = request.headers.count("Host");
    if (hosts > 1)
        return bad_request("the request has more than one Host header");
    std::optional<std::string> authority = std::move(target->authority);
    if (!authority && hosts == 1)
        authority = std::string(*request.headers.get("Host"));
    if (!authority) {
        if (request.http_minor >= 1)
            return bad_request("HTTP/1.1 requests need a Host header");
    } else if (rules.host_key.empty() || *authority != rules.host_key) {
        // (A Host that is this identity's key byte for byte, as most are, is
        // one already: a key reduces to itself.)
        auto key = host_key_from_header(*authority);
        if (!key)
            return bad_request("the Host header is not a valid host[:port]");
        // Keep-alive must never carry a request to another identity.
        if (*key != rules.host_key) {
            return Rejection { 421, "misdirected_request",
                "this connection serves " + std::string(rules.host_key) + ", not " + *key + "; open a new connection" };
        }
    }

    // Refused before a byte of it is read, so the client learns at once (and,
    // with 100-continue, need not send it at all).
    if (framing.content_length.value_or(0) > rules.max_body_bytes)
        return body_too_large(rules.max_body_bytes);
    if (auto expect = request.headers.get("Expect"); expect && !iequals(trim_ows(*expect), "100-continue"))
        return Rejection { 417, "expectation_failed", "only Expect: 100-continue is supported" };
    return std::nullopt;
}

Rejection body_too_large(size_t max_body_bytes)
{
    return Rejection { 413, "body_too_large",
        "the request body is larger than " + std::to_string(max_body_bytes) + " bytes" };
}

bool wants_continue(Request const& request, BodyFraming const& framing)
{
    return request.headers.get("Expect") && expects_body(framing) && request.http_minor >= 1;
}

}
