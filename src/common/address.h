// Socket addresses as operators write and read them: "127.0.0.1:8080",
// "[::1]:8080". Used for --listen and for client addresses in logs.
#pragma once

#include "common/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace posta {

struct SocketAddress {
    sockaddr_storage storage {};
    socklen_t length = 0;

    sockaddr const* get() const { return reinterpret_cast<sockaddr const*>(&storage); }
};

// Parses "HOST:PORT" where HOST is a numeric IPv4 address or a bracketed IPv6
// address. Names are not resolved: a listen address is explicit.
Result<SocketAddress> parse_socket_address(std::string_view text);

// The address of `family` (AF_INET or AF_INET6) whose 4 or 16 bytes, in
// network order, are at `bytes`, with `port` in host order.
SocketAddress socket_address_of(int family, void const* bytes, uint16_t port);

// The address of `literal`, a numeric address of `family` (AF_INET or
// AF_INET6, no brackets), and `port`; nullopt when it is not one.
std::optional<SocketAddress> make_socket_address(int family, std::string_view literal, uint16_t port);

// "127.0.0.1:8080", "[::1]:8080", "unix" for anything else.
std::string format_address(sockaddr const*, socklen_t);

// The address without port: what rate limits and ACL logs key on.
std::string format_host(sockaddr const*, socklen_t);

}
