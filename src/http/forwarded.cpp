#include "forwarded.h"

#include "common/address.h"

#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>
#include <optional>

namespace posta {

namespace {

// "192.0.2.7", "192.0.2.7:443", "2001:db8::7", "[2001:db8::7]" or
// "[2001:db8::7]:443" as a socket address (port 0); nullopt otherwise.
std::optional<SocketAddress> parse_hop(std::string_view text)
{
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos)
            return std::nullopt;
        std::string_view after = text.substr(close + 1);
        if (!after.empty() && after.front() != ':')
            return std::nullopt;
        text = text.substr(1, close - 1);
    } else if (size_t colon = text.find(':'); colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
        text = text.substr(0, colon); // IPv4 with a port
    }
    char literal[INET6_ADDRSTRLEN] {};
    if (text.empty() || text.size() >= sizeof literal)
        return std::nullopt;
    std::memcpy(literal, text.data(), text.size());
    unsigned char bytes[16];
    for (int family : { AF_INET, AF_INET6 })
        if (::inet_pton(family, literal, bytes) == 1)
            return socket_address_of(family, bytes, 0);
    return std::nullopt;
}

bool trusted(std::vector<AddressRange> const& ranges, SocketAddress const& address)
{
    return any_range_contains(ranges, address.get(), address.length);
}

// Every entry of every X-Forwarded-For field, in order (RFC 9110 section
// 5.3: several fields of one name are one comma-separated list).
std::vector<std::string_view> forwarded_for(Headers const& headers)
{
    std::vector<std::string_view> out;
    for (auto const& [name, value] : headers) {
        if (!iequals(name, "X-Forwarded-For"))
            continue;
        std::string_view rest = value;
        for (;;) {
            size_t comma = rest.find(',');
            out.push_back(trim_ows(rest.substr(0, comma)));
            if (comma == std::string_view::npos)
                break;
            rest.remove_prefix(comma + 1);
        }
    }
    return out;
}

}

ClientOrigin client_origin(std::string_view peer_host, Headers const& headers,
    std::vector<AddressRange> const& trusted_proxies)
{
    ClientOrigin out;
    // No front is trusted (the default): nothing to parse, on every request.
    if (trusted_proxies.empty())
        return out;
    auto peer = parse_hop(peer_host);
    if (!peer || !trusted(trusted_proxies, *peer))
        return out;
    out.via_trusted_proxy = true;
    std::string_view proto = trim_ows(headers.get("X-Forwarded-Proto").value_or("https"));
    out.secure_at_front = !iequals(trim_ows(proto.substr(0, proto.find(','))), "http");

    auto hops = forwarded_for(headers);
    if (hops.empty())
        return out;
    SocketAddress client = *peer;
    for (auto hop = hops.rbegin(); hop != hops.rend(); ++hop) {
        auto address = parse_hop(*hop);
        if (!address)
            break; // not ours to read: the trusted hop that wrote it stands
        client = *address;
        if (!trusted(trusted_proxies, client))
            break;
    }
    out.forwarded_host = format_host(client.get(), client.length);
    return out;
}

}
