#include "address.h"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <netinet/in.h>

namespace posta {

Result<SocketAddress> parse_socket_address(std::string_view text)
{
    auto fail = [&](char const* why) {
        return Error::message("listen address", why, "\"" + std::string(text) + "\"");
    };
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
        return fail("needs a port, as in 127.0.0.1:8080 or [::1]:8080");
    std::string_view host = text.substr(0, colon);
    std::string_view port_text = text.substr(colon + 1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535 || port_text.empty())
        return fail("has a bad port; use 0-65535");

    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        auto address = make_socket_address(AF_INET6, host.substr(1, host.size() - 2), static_cast<uint16_t>(port));
        if (!address)
            return fail("has a bad IPv6 address");
        return *address;
    }
    auto address = make_socket_address(AF_INET, host, static_cast<uint16_t>(port));
    if (!address)
        return fail("needs a numeric IPv4 address or a bracketed IPv6 address");
    return *address;
}

SocketAddress socket_address_of(int family, void const* bytes, uint16_t port)
{
    SocketAddress out;
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage);
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, bytes, 4);
        sin->sin_port = htons(port);
        out.length = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
        sin6->sin6_family = AF_INET6;
        std::memcpy(&sin6->sin6_addr, bytes, 16);
        sin6->sin6_port = htons(port);
        out.length = sizeof(sockaddr_in6);
    }
    return out;
}

std::optional<SocketAddress> make_socket_address(int family, std::string_view literal, uint16_t port)
{
    char text[INET6_ADDRSTRLEN] {};
    if (literal.empty() || literal.size() >= sizeof text || (family != AF_INET && family != AF_INET6))
        return std::nullopt;
    std::memcpy(text, literal.data(), literal.size());
    unsigned char bytes[16];
    if (::inet_pton(family, text, bytes) != 1)
        return std::nullopt;
    return socket_address_of(family, bytes, port);
}

std::string format_host(sockaddr const* addr, socklen_t len)
{
    char buf[INET6_ADDRSTRLEN] {};
    if (addr && addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in const*>(addr)->sin_addr, buf, sizeof buf);
        return buf;
    }
    if (addr && addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6 const*>(addr)->sin6_addr, buf, sizeof buf);
        return buf;
    }
    return "unix";
}

std::string format_address(sockaddr const* addr, socklen_t len)
{
    if (addr && addr->sa_family == AF_INET && len >= sizeof(sockaddr_in))
        return format_host(addr, len) + ":" + std::to_string(ntohs(reinterpret_cast<sockaddr_in const*>(addr)->sin_port));
    if (addr && addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6))
        return "[" + format_host(addr, len) + "]:" + std::to_string(ntohs(reinterpret_cast<sockaddr_in6 const*>(addr)->sin6_port));
    return "unix";
}

}
