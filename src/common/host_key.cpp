// Host keys and identity URLs. One reduction, reduce_host() below, serves the
// Host header of every request (supervisor routing, worker 421 check) and the
// URL of every manifest entry, so a request reaches an identity exactly when
// the two reduce to the same string. Refs: RFC 3986 section 3.2.2 (host),
// RFC 9110 section 7.2 (Host), RFC 1123 section 2.1 (host names).
#include "host_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace posta {

namespace {

constexpr size_t k_max_label = 63;
constexpr size_t k_max_name = 253;

char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool has_non_ascii(std::string_view text)
{
    for (char c : text) {
        if (static_cast<unsigned char>(c) >= 0x80)
            return true;
    }
    return false;
}

// How a character is shown in an error: 'x', or its code when unprintable.
std::string show_char(char c)
{
    auto u = static_cast<unsigned char>(c);
    if (u == ' ')
        return "a space";
    if (u < 0x20 || u == 0x7f) {
        static char const hex[] = "0123456789abcdef";
        return std::string("control character 0x") + hex[u >> 4] + hex[u & 0xf];
    }
    return std::string("'") + c + "'";
}

Error host_error(std::string detail)
{
    return Error::message("host", std::move(detail));
}

// "[v6]" -> "[canonical v6]". inet_ntop gives the RFC 5952 spelling (lower
// case, longest zero run compressed), so "[0:0::1]" and "[::1]" share a key.
Result<std::string> reduce_ipv6(std::string_view bracketed)
{
    if (bracketed.size() < 2 || bracketed.back() != ']')
        return host_error("an IPv6 address must be written in brackets, like [2001:db8::1]");
    std::string inner(bracketed.substr(1, bracketed.size() - 2));
    in6_addr addr {};
    if (inner.find('%') != std::string::npos)
        return host_error("IPv6 zone identifiers ('%') are not allowed; use the address alone");
    if (inet_pton(AF_INET6, inner.c_str(), &addr) != 1)
        return host_error("[" + inner + "] is not a valid IPv6 address; write one like [2001:db8::1]");
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(AF_INET6, &addr, text, sizeof text))
        return Error::from_errno("inet_ntop", inner);
    return "[" + std::string(text) + "]";
}

// Reduces a host (no port) to its key: lowercase, one trailing dot removed,
// IPv6 literals in canonical form. A name must be LDH labels of 1-63
// characters, 253 in all; a name whose last label is all digits must be a
// dotted-quad IPv4 address (as in the WHATWG URL standard), so "1.2.3.999"
// is refused rather than treated as a name nobody can resolve.
Result<std::string> reduce_host(std::string_view host)
{
    if (host.empty())
        return host_error("the host is empty; give a host name or address");
    if (has_non_ascii(host))
        return host_error("the host is not ASCII; write an internationalized name in punycode (xn--...)");
    if (host.front() == '[')
        return reduce_ipv6(host);

    std::string name;
    name.reserve(host.size());
    for (char c : host)
        name += lower(c);
    if (name.back() == '.')
        name.pop_back();
    if (name.empty())
        return host_error("the host is only a dot; give a host name or address");
    for (char c : name) {
        if (!(c >= 'a' && c <= 'z') && !is_digit(c) && c != '-' && c != '.') {
            if (c == ':')
                return host_error("a bare IPv6 address must be written in brackets, like [::1]");
            return host_error(show_char(c) + " is not allowed in a host name; use letters, digits, '-' and '.'");
        }
    }
    if (name.size() > k_max_name)
        return host_error("the host name is longer than 253 characters");

    std::string_view rest = name;
    std::string_view last;
    while (true) {
        size_t dot = rest.find('.');
        std::string_view label = rest.substr(0, dot);
        if (label.empty())
            return host_error("the host name \"" + name + "\" has an empty label (\"..\" or a leading '.'); remove the extra dot");
        if (label.size() > k_max_label)
            return host_error("a label of the host name is longer than 63 characters");
        if (label.front() == '-' || label.back() == '-')
            return host_error("the label \"" + std::string(label) + "\" starts or ends with '-'; labels may only have '-' inside");
        last = label;
        if (dot == std::string_view::npos)
            break;
        rest.remove_prefix(dot + 1);
    }

    bool numeric = true;
    for (char c : last)
        numeric = numeric && is_digit(c);
    if (numeric) {
        in_addr addr {};
        if (inet_pton(AF_INET, name.c_str(), &addr) != 1)
            return host_error("\"" + name + "\" is not a valid IPv4 address; write four numbers 0-255 without leading zeros, like 192.0.2.1");
    }
    return name;
}

struct HostPort {
    std::string_view host;
    bool has_port = false;
    std::string_view port; // the digits after ':', possibly empty
};

// Splits "host[:port]" and "[v6][:port]". A bare IPv6 address (more than one
// ':') is left whole in `host`, where reduce_host() refuses it with advice.
Result<HostPort> split_host_port(std::string_view authority)
{
    HostPort out;
    size_t colon;
    if (!authority.empty() && authority.front() == '[') {
        size_t close = authority.find(']');
        if (close == std::string_view::npos)
            return host_error("the IPv6 address has no closing ']'; write it like [2001:db8::1]");
        colon = close + 1;
        if (colon < authority.size() && authority[colon] != ':')
            return host_error("unexpected text after ']'; only \":PORT\" may follow an IPv6 address");
    } else {
        colon = authority.find(':');
        if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos)
            colon = std::string_view::npos;
    }
    out.host = authority.substr(0, colon);
    if (colon < authority.size()) {
        out.has_port = true;
        out.port = authority.substr(colon + 1);
    }
    return out;
}

// A port is decimal digits with a value up to 65535; leading zeros are
// harmless and accepted.
Result<uint32_t> parse_port(std::string_view digits)
{
    auto refuse = [&] { return host_error("the port \"" + std::string(digits) + "\" is not a number up to 65535"); };
    if (digits.empty() || digits.size() > 5)
        return refuse();
    uint32_t value = 0;
    for (char c : digits) {
        if (!is_digit(c))
            return refuse();
        value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (value > 65535)
        return refuse();
    return value;
}

Error url_error(std::string_view url, std::string detail)
{
    return Error::message("identity URL", std::move(detail), std::string(url));
}

}

// Surrounding spaces and tabs are not part of a field value (RFC 9110
// section 5.5), so they are ignored here whatever the HTTP parser leaves;
// any space inside the value is refused. An empty port ("arne.local:") is
// allowed by the Host grammar (port = *DIGIT) and treated as no port.
Result<std::string> host_key_from_header(std::string_view host)
{
    while (!host.empty() && (host.front() == ' ' || host.front() == '\t'))
        host.remove_prefix(1);
    while (!host.empty() && (host.back() == ' ' || host.back() == '\t'))
        host.remove_suffix(1);

    auto parts = split_host_port(host);
    if (!parts)
        return std::move(parts).error();
    if (parts->has_port && !parts->port.empty()) {
        if (auto port = parse_port(parts->port); !port)
            return std::move(port).error();
    }
    return reduce_host(parts->host);
}

// Stricter than a Host header: the manifest is written by an operator, so
// anything that is not plainly scheme://host[:port][/] is refused with the
// reason, including an empty port and port 0.
Result<IdentityUrl> parse_identity_url(std::string_view url)
{
    for (char c : url) {
        auto u = static_cast<unsigned char>(c);
        if (u >= 0x80)
            return url_error(url, "the URL is not ASCII; write an internationalized host name in punycode (xn--...)");
        if (u <= 0x20 || u == 0x7f)
            return url_error(url, "the URL contains " + show_char(c) + "; remove it");
    }

    size_t sep = url.find("://");
    if (sep == std::string_view::npos || sep == 0)
        return url_error(url, "no scheme; write it as http://HOST[:PORT] or https://HOST[:PORT]");
    IdentityUrl out;
    for (char c : url.substr(0, sep))
        out.scheme += lower(c);
    uint16_t default_port;
    if (out.scheme == "http") {
        default_port = 80;
    } else if (out.scheme == "https") {
        default_port = 443;
    } else {
        return url_error(url, "the scheme \"" + out.scheme + "\" is not supported; use http or https");
    }

    std::string_view rest = url.substr(sep + 3);
    size_t end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);

    if (authority.find('@') != std::string_view::npos)
        return url_error(url, "userinfo (\"user@\") is not allowed; write only the host and an optional port");
    if (authority.empty())
        return url_error(url, "no host; write it as " + out.scheme + "://HOST[:PORT]");

    auto parts = split_host_port(authority);
    if (!parts)
        return url_error(url, parts.error().detail);
    out.port = default_port;
    if (parts->has_port) {
        if (parts->port.empty())
            return url_error(url, "the port after ':' is empty; give a port number or remove the ':'");
        auto port = parse_port(parts->port);
        if (!port || *port == 0)
            return url_error(url, "the port \"" + std::string(parts->port) + "\" is not a number from 1 to 65535");
        out.port = static_cast<uint16_t>(*port);
    }
    auto host = reduce_host(parts->host);
    if (!host)
        return url_error(url, host.error().detail);
    out.host = std::move(host).value();
    out.host_key = out.host;

    size_t mark = tail.find_first_of("?#");
    std::string_view path = tail.substr(0, mark);
    if (!path.empty() && path != "/")
        return url_error(url, "the path \"" + std::string(path) + "\" is not allowed; an identity URL is only scheme://host[:port]");
    if (mark != std::string_view::npos) {
        if (tail[mark] == '?')
            return url_error(url, "a query ('?') is not allowed; remove it and what follows");
        return url_error(url, "a fragment ('#') is not allowed; remove it and what follows");
    }

    out.canonical = out.scheme + "://" + out.host;
    if (out.port != default_port)
        out.canonical += ":" + std::to_string(out.port);
    return out;
}

}
