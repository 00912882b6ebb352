// RequestTarget: a request-target split for routing (RFC 9112 section 3.2).
// Pure: the worker's head check (head_check.h) uses it on every request; it
// owns nothing and logs nothing.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace posta {

struct RequestTarget {
    std::string path;  // undecoded, never empty: "/" for "http://host"
    std::string query; // after '?', without it
    // The authority of an absolute-form target, which replaces Host (RFC 9112
    // section 3.2.2).
    std::optional<std::string> authority;
};

// Splits origin-form "/p?q", absolute-form "http://host/p?q" (http or https,
// any case) and asterisk-form "*". Anything else, authority-form (CONNECT)
// included, is nullopt: the caller answers 400.
std::optional<RequestTarget> split_request_target(std::string_view target);

}
