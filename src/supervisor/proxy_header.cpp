// Refs: HAProxy's doc/proxy-protocol.txt, section 2.1 (the human-readable
// header format, version 1) and 2.2 (the binary header format, version 2).
#include "proxy_header.h"

#include <cstdint>

namespace posta {

namespace {

constexpr std::string_view v1_signature = "PROXY ";
constexpr std::string_view v2_signature { "\r\n\r\n\0\r\nQUIT\n", 12 };
// Section 2.1: "a 108-byte buffer is always enough to store all the line and
// a trailing zero", so the line with its CRLF is at most 107 bytes.
constexpr size_t v1_max_line = 107;
constexpr size_t v2_fixed = 16;

ProxyHeader need_more() { return ProxyHeader { ProxyHeader::State::NeedMore, 0, std::nullopt, "" }; }

ProxyHeader malformed(char const* why) { return ProxyHeader { ProxyHeader::State::Malformed, 0, std::nullopt, why }; }

ProxyHeader complete(size_t length, std::optional<SocketAddress> source = std::nullopt)
{
    return ProxyHeader { ProxyHeader::State::Complete, length, std::move(source), "" };
}

bool begins(std::string_view bytes, std::string_view signature)
{
    size_t n = bytes.size() < signature.size() ? bytes.size() : signature.size();
    return bytes.substr(0, n) == signature.substr(0, n);
}

// A decimal port of 1 to 5 digits, at most 65535.
std::optional<uint16_t> parse_port(std::string_view text)
{
    if (text.empty() || text.size() > 5)
        return std::nullopt;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535)
        return std::nullopt;
    return static_cast<uint16_t>(value);
}

// "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 ...", "PROXY UNKNOWN...\r\n".
ProxyHeader read_v1(std::string_view bytes)
{
    std::string_view window = bytes.substr(0, v1_max_line);
    size_t lf = window.find('\n');
    if (lf == std::string_view::npos)
        return bytes.size() >= v1_max_line ? malformed("a version 1 line longer than 107 bytes") : need_more();
    if (lf == 0 || window[lf - 1] != '\r')
        return malformed("a version 1 line not ended by CRLF");
    std::string_view line = window.substr(v1_signature.size(), lf - 1 - v1_signature.size());
    size_t length = lf + 1;

    // Section 2.1: with UNKNOWN the receiver ignores the rest of the line
    // and uses the connection's own addresses.
    if (line == "UNKNOWN" || line.substr(0, 8) == "UNKNOWN ")
        return complete(length);

    std::string_view fields[5];
    size_t count = 0;
    for (;;) {
        if (count == 5)
            return malformed("a version 1 line with more than five fields");
        size_t space = line.find(' ');
        fields[count++] = line.substr(0, space);
        if (space == std::string_view::npos)
            break;
        line.remove_prefix(space + 1);
    }
    if (count != 5)
        return malformed("a version 1 line without its five fields");
    int family = 0;
    if (fields[0] == "TCP4")
        family = AF_INET;
    else if (fields[0] == "TCP6")
        family = AF_INET6;
    else
        return malformed("a version 1 protocol other than TCP4, TCP6 or UNKNOWN");
    auto source_port = parse_port(fields[3]);
    auto destination_port = parse_port(fields[4]);
    if (!source_port || !destination_port)
        return malformed("a version 1 port that is not a number from 0 to 65535");
    auto source = make_socket_address(family, fields[1], *source_port);
    if (!source || !make_socket_address(family, fields[2], *destination_port))
        return malformed("a version 1 address that is not of its protocol");
    return complete(length, *source);
}

// Twelve signature bytes, version and command, family and transport, the
// length of the rest (big-endian), then the addresses and any TLVs.
ProxyHeader read_v2(std::string_view bytes)
{
    auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
    if (bytes.size() > 12) {
        if ((byte(12) >> 4) != 2)
            return malformed("a version 2 signature with another version");
        if ((byte(12) & 0x0f) > 1)
            return malformed("a version 2 command other than LOCAL or PROXY");
    }
    if (bytes.size() < v2_fixed)
        return need_more();
    size_t length = v2_fixed + ((static_cast<size_t>(byte(14)) << 8) | byte(15));
    if (length > max_proxy_header_bytes)
        return malformed("a version 2 header longer than this server reads");
    if (bytes.size() < length)
        return need_more();

    // Section 2.2: with LOCAL the receiver ignores the family and the
    // addresses; the connection is the front's own (a health check).
    if ((byte(12) & 0x0f) == 0)
        return complete(length);
    size_t address_bytes = length - v2_fixed;
    char const* at = bytes.data() + v2_fixed;
    switch (byte(13)) {
    case 0x00: // UNSPEC: the front does not know; the connection's address stands
    case 0x31: // a Unix stream socket: no address to limit or log by
        return complete(length);
    case 0x11: // TCP over IPv4: 4 + 4 address bytes, 2 + 2 port bytes
    case 0x21: { // TCP over IPv6: 16 + 16 address bytes, 2 + 2 port bytes
        bool v4 = byte(13) == 0x11;
        size_t size = v4 ? 4 : 16;
        if (address_bytes < 2 * size + 4)
            return malformed(v4 ? "a version 2 TCP4 header too short for its addresses"
                                : "a version 2 TCP6 header too short for its addresses");
        uint16_t port = static_cast<uint16_t>((byte(v2_fixed + 2 * size) << 8) | byte(v2_fixed + 2 * size + 1));
        return complete(length, socket_address_of(v4 ? AF_INET : AF_INET6, at, port));
    }
    case 0x12:
    case 0x22:
    case 0x32:
        return malformed("a version 2 header for a datagram connection");
    default:
        return malformed("a version 2 address family or transport the spec does not define");
    }
}

}

ProxyHeader read_proxy_header(std::string_view bytes)
{
    if (bytes.empty())
        return need_more();
    if (begins(bytes, v1_signature))
        return bytes.size() < v1_signature.size() ? need_more() : read_v1(bytes);
    if (begins(bytes, v2_signature))
        return bytes.size() < v2_signature.size() ? need_more() : read_v2(bytes);
    return ProxyHeader {};
}

bool has_proxy_signature(std::string_view bytes)
{
    return bytes.substr(0, v1_signature.size()) == v1_signature
        || bytes.substr(0, v2_signature.size()) == v2_signature;
}

}
