// ProxyHeader: PROXY protocol v1 and v2 headers whole, split at every byte,
// naming no client, and malformed; the bytes after a header are not read.
#include "supervisor/proxy_header.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <string>

using posta::format_address;
using posta::ProxyHeader;
using posta::read_proxy_header;
using State = ProxyHeader::State;

namespace {

std::string v2(uint8_t version_command, uint8_t family, std::string const& rest)
{
    std::string out("\r\n\r\n\0\r\nQUIT\n", 12);
    out += static_cast<char>(version_command);
    out += static_cast<char>(family);
    out += static_cast<char>(rest.size() >> 8);
    out += static_cast<char>(rest.size() & 0xff);
    return out + rest;
}

// 127.0.0.21:40000 -> 127.0.0.1:8080 as a v2 TCP4 address block.
std::string tcp4_block()
{
    return std::string("\x7f\x00\x00\x15\x7f\x00\x00\x01\x9c\x40\x1f\x90", 12);
}

std::string source_of(ProxyHeader const& header)
{
    REQUIRE(header.source);
    return format_address(header.source->get(), header.source->length);
}

}

TEST_CASE("a version 1 TCP4 line gives its source and its length, not what follows")
{
    std::string line = "PROXY TCP4 127.0.0.21 127.0.0.1 40000 8080\r\n";
    auto header = read_proxy_header(line + "GET / HTTP/1.1\r\n");
    CHECK(header.state == State::Complete);
    CHECK(header.length == line.size());
    CHECK(source_of(header) == "127.0.0.21:40000");
}

TEST_CASE("a version 1 TCP6 line gives an IPv6 source")
{
    auto header = read_proxy_header("PROXY TCP6 ::1 ::1 5 443\r\n");
    CHECK(header.state == State::Complete);
    CHECK(source_of(header) == "[::1]:5");
}

TEST_CASE("version 1 UNKNOWN names no client, with or without addresses")
{
    for (std::string line : { "PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n" }) {
        auto header = read_proxy_header(line);
        CHECK(header.state == State::Complete);
        CHECK(header.length == line.size());
        CHECK_FALSE(header.source);
    }
}

TEST_CASE("a version 1 line split at every byte needs more until its CRLF")
{
    std::string line = "PROXY TCP4 127.0.0.21 127.0.0.1 40000 8080\r\n";
    for (size_t n = 1; n < line.size(); ++n)
        CHECK(read_proxy_header(line.substr(0, n)).state == State::NeedMore);
    CHECK(read_proxy_header(line).state == State::Complete);
}

TEST_CASE("malformed version 1 lines are refused")
{
    for (std::string line : {
             "PROXY TCP4 127.0.0.21 127.0.0.1 40000\r\n",          // four fields
             "PROXY TCP4 127.0.0.21 127.0.0.1 40000 8080 9\r\n",   // six
             "PROXY TCP4 127.0.0.21  127.0.0.1 40000 8080\r\n",    // an empty field
             "PROXY TCP4 ::1 127.0.0.1 40000 8080\r\n",            // IPv6 under TCP4
             "PROXY TCP6 127.0.0.21 ::1 40000 8080\r\n",           // IPv4 under TCP6
             "PROXY TCP4 127.0.0.21 127.0.0.1 65536 8080\r\n",     // port out of range
             "PROXY TCP4 127.0.0.21 127.0.0.1 -1 8080\r\n",
             "PROXY UDP4 127.0.0.21 127.0.0.1 40000 8080\r\n",     // not TCP
             "PROXY TCP4 127.0.0.21 127.0.0.1 40000 8080\n",       // LF alone
             "PROXY \r\n",
         }) {
        CAPTURE(line);
        CHECK(read_proxy_header(line).state == State::Malformed);
    }
}

TEST_CASE("a version 1 line longer than 107 bytes is refused without its CRLF")
{
    std::string line = "PROXY UNKNOWN " + std::string(93, 'x');
    CHECK(line.size() == 107);
    CHECK(read_proxy_header(line.substr(0, 106)).state == State::NeedMore);
    CHECK(read_proxy_header(line).state == State::Malformed);
}

TEST_CASE("a version 2 PROXY TCP4 header gives its source, TLVs included in its length")
{
    std::string tlv("\x04\x00\x02hi", 5); // PP2_TYPE_NOOP with two bytes
    std::string header_bytes = v2(0x21, 0x11, tcp4_block() + tlv);
    auto header = read_proxy_header(header_bytes + "\x16\x03\x01");
    CHECK(header.state == State::Complete);
    CHECK(header.length == 16 + 12 + 5);
    CHECK(source_of(header) == "127.0.0.21:40000");
}

TEST_CASE("a version 2 PROXY TCP6 header gives an IPv6 source")
{
    std::string block(36, '\0');
    block[15] = 1;                 // source ::1
    block[31] = 1;                 // destination ::1
    block[32] = '\x01';            // source port 443
    block[33] = '\xbb';
    auto header = read_proxy_header(v2(0x21, 0x21, block));
    CHECK(header.state == State::Complete);
    CHECK(source_of(header) == "[::1]:443");
}

TEST_CASE("version 2 LOCAL, UNSPEC and Unix headers name no client")
{
    for (auto const& bytes : { v2(0x20, 0x00, ""), v2(0x20, 0x11, tcp4_block()), v2(0x21, 0x00, "xyz"),
             v2(0x21, 0x31, std::string(216, '\0')) }) {
        auto header = read_proxy_header(bytes);
        CHECK(header.state == State::Complete);
        CHECK(header.length == bytes.size());
        CHECK_FALSE(header.source);
    }
}

TEST_CASE("a version 2 header split at every byte needs more until its last byte")
{
    std::string bytes = v2(0x21, 0x11, tcp4_block());
    for (size_t n = 1; n < bytes.size(); ++n) {
        CAPTURE(n);
        CHECK(read_proxy_header(bytes.substr(0, n)).state == State::NeedMore);
    }
    CHECK(read_proxy_header(bytes).state == State::Complete);
}

TEST_CASE("malformed version 2 headers are refused")
{
    CHECK(read_proxy_header(v2(0x11, 0x11, tcp4_block())).state == State::Malformed); // version 1 in v2 form
    CHECK(read_proxy_header(v2(0x22, 0x11, tcp4_block())).state == State::Malformed); // command 2
    CHECK(read_proxy_header(v2(0x21, 0x12, tcp4_block())).state == State::Malformed); // UDP
    CHECK(read_proxy_header(v2(0x21, 0x41, tcp4_block())).state == State::Malformed); // family 4
    CHECK(read_proxy_header(v2(0x21, 0x11, "short")).state == State::Malformed);
    CHECK(read_proxy_header(v2(0x21, 0x21, tcp4_block())).state == State::Malformed); // too short for IPv6
    // The bad version is known from the 13th byte: no waiting for the rest.
    CHECK(read_proxy_header(v2(0x31, 0x11, tcp4_block()).substr(0, 13)).state == State::Malformed);
}

TEST_CASE("a version 2 header longer than the bound is refused from its fixed part")
{
    std::string bytes = v2(0x21, 0x11, std::string(posta::max_proxy_header_bytes, 'x'));
    CHECK(read_proxy_header(bytes.substr(0, 16)).state == State::Malformed);
    std::string longest = v2(0x21, 0x11, tcp4_block() + std::string(posta::max_proxy_header_bytes - 28, 'x'));
    CHECK(read_proxy_header(longest).state == State::Complete);
}

TEST_CASE("bytes that begin no signature are absent, prefixes of one need more")
{
    CHECK(read_proxy_header("GET / HTTP/1.1\r\n").state == State::Absent);
    CHECK(read_proxy_header("PROPFIND / HTTP/1.1\r\n").state == State::Absent);
    CHECK(read_proxy_header("\x16\x03\x01\x02").state == State::Absent);
    CHECK(read_proxy_header("\r\n\r\nGET").state == State::Absent);
    CHECK(read_proxy_header("PRO").state == State::NeedMore);
    CHECK(read_proxy_header(std::string("\r\n\r\n\0", 5)).state == State::NeedMore);
    CHECK(read_proxy_header("").state == State::NeedMore);
}

TEST_CASE("a whole signature is what an untrusted connection is refused for")
{
    CHECK(posta::has_proxy_signature("PROXY TCP4 "));
    CHECK(posta::has_proxy_signature(v2(0x21, 0x11, "")));
    CHECK_FALSE(posta::has_proxy_signature("PROXY"));
    CHECK_FALSE(posta::has_proxy_signature("GET / HTTP/1.1\r\n"));
}
