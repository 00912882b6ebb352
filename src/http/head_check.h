// The checks a request head passes before a byte of its body is read: the
// HTTP version, the request-target, Host (exactly one, or an absolute
// target's authority, and this identity's), the declared body size and
// Expect. Pure: HttpSession calls it with what RequestParser parsed; it owns
// nothing and logs nothing.
#pragma once

#include "http/http_message.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace posta {

// How the body of a request is delimited, as its head declares it.
struct BodyFraming {
    bool chunked = false;
    std::optional<uint64_t> content_length; // never set together with chunked
};

struct HeadRules {
    std::string_view host_key; // this identity's; any other gets 421
    size_t max_body_bytes = 1048576;
};

// Checks `request` (method, target, version and headers as parsed) and, when
// it passes, sets its path and query. Returns what to answer instead, with
// the connection closing after it, or nullopt when the request may proceed.
std::optional<Rejection> check_head(Request& request, BodyFraming const& framing, HeadRules const& rules);

// 413 for a body over max_body_bytes, declared or counted.
Rejection body_too_large(size_t max_body_bytes);

// Whether the client waits for "100 Continue" before sending the body
// (Refs: RFC 9110 section 10.1.1: never to HTTP/1.0, only when a body is to
// come). Only for a head that passed check_head.
bool wants_continue(Request const& request, BodyFraming const& framing);

}
