// The ClientHello reader over real first flights of OpenSSL clients (TLS 1.3
// and 1.2-only, with and without SNI), the same hellos split across records
// and reads, the bound, and hand-made malformed ones.
#include "supervisor/client_hello.h"

#include <doctest/doctest.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <vector>

using posta::ClientHelloPeek;
using posta::read_client_hello;
using State = ClientHelloPeek::State;

namespace {

enum class Version { Any, Tls12Only };

// The first flight an OpenSSL client sends: it writes into a memory BIO and
// stops, waiting for a ServerHello that never comes.
std::string openssl_client_hello(char const* server_name, Version version = Version::Any)
{
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    REQUIRE(ctx);
    if (version == Version::Tls12Only)
        REQUIRE(SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) == 1);
    SSL* ssl = SSL_new(ctx);
    REQUIRE(ssl);
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out); // the SSL owns both BIOs now
    if (server_name)
        REQUIRE(SSL_set_tlsext_host_name(ssl, server_name) == 1);
    SSL_set_connect_state(ssl);
    int rc = SSL_do_handshake(ssl);
    REQUIRE(rc <= 0);
    REQUIRE(SSL_get_error(ssl, rc) == SSL_ERROR_WANT_READ);
    char* data = nullptr;
    long length = BIO_get_mem_data(out, &data);
    std::string flight(data, static_cast<size_t>(length));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return flight;
}

void put16(std::string& out, size_t value)
{
    out += static_cast<char>(value >> 8 & 0xff);
    out += static_cast<char>(value & 0xff);
}

std::string record(std::string_view fragment, uint8_t type = 22)
{
    std::string out;
    out += static_cast<char>(type);
    out += "\x03\x01";
    put16(out, fragment.size());
    out += fragment;
    return out;
}

// The handshake layer of a flight of records: their fragments, joined.
std::string handshake_bytes(std::string_view flight)
{
    std::string out;
    while (flight.size() >= 5) {
        size_t length = static_cast<uint8_t>(flight[3]) << 8 | static_cast<uint8_t>(flight[4]);
        out += flight.substr(5, length);
        flight.remove_prefix(5 + length);
    }
    return out;
}

// The same handshake bytes in records of at most `chunk` bytes each.
std::string reframe(std::string_view flight, size_t chunk)
{
    std::string handshake = handshake_bytes(flight);
    std::string out;
    for (size_t at = 0; at < handshake.size(); at += chunk)
        out += record(std::string_view(handshake).substr(at, chunk));
    return out;
}

// A ClientHello record made by hand: `extensions` is the whole extensions
// block with its length, or empty for a hello without one.
std::string hand_hello(std::string_view extensions, std::string_view session_id = "",
    std::string_view ciphers = std::string("\x13\x01", 2))
{
    std::string body = "\x03\x03";
    body += std::string(32, 'r');
    body += static_cast<char>(session_id.size());
    body += session_id;
    put16(body, ciphers.size());
    body += ciphers;
    body += std::string("\x01\x00", 2);
    body += extensions;
    std::string message = "\x01";
    message += '\0';
    put16(message, body.size());
    return record(message + body);
}

std::string sni_extension(std::string_view list_body)
{
    std::string ext;
    put16(ext, 0);
    put16(ext, list_body.size() + 2);
    put16(ext, list_body.size());
    ext += list_body;
    return ext;
}

std::string host_name_entry(std::string_view name)
{
    std::string out(1, '\0');
    put16(out, name.size());
    out += name;
    return out;
}

std::string extensions_block(std::string_view extensions)
{
    std::string out;
    put16(out, extensions.size());
    out += extensions;
    return out;
}

ClientHelloPeek read(std::string_view bytes, size_t max_bytes = 16384) { return read_client_hello(bytes, max_bytes); }

}

TEST_CASE("a TLS 1.3 client's hello yields its SNI host name as sent")
{
    std::string hello = openssl_client_hello("Arne.Local");
    auto peek = read(hello);
    CHECK(peek.state == State::ServerName);
    CHECK(peek.server_name() == "Arne.Local");
}

TEST_CASE("a TLS 1.2-only client's hello yields its SNI host name")
{
    std::string hello = openssl_client_hello("marcus.local", Version::Tls12Only);
    auto peek = read(hello);
    CHECK(peek.state == State::ServerName);
    CHECK(peek.server_name() == "marcus.local");
}

TEST_CASE("a client's hello without SNI says so, in TLS 1.3 and 1.2")
{
    CHECK(read(openssl_client_hello(nullptr)).state == State::NoServerName);
    CHECK(read(openssl_client_hello(nullptr, Version::Tls12Only)).state == State::NoServerName);
}

TEST_CASE("every strict prefix of a real hello needs more, whatever its records")
{
    std::string hello = openssl_client_hello("arne.local");
    for (size_t chunk : { size_t(16384), size_t(100), size_t(7), size_t(1) }) {
        CAPTURE(chunk);
        std::string flight = reframe(hello, chunk);
        for (size_t length = 0; length < flight.size(); ++length) {
            auto peek = read(std::string_view(flight).substr(0, length));
            if (peek.state != State::NeedMore) {
                CAPTURE(length);
                CHECK(peek.state == State::NeedMore);
                break;
            }
        }
        auto whole = read(flight);
        CHECK(whole.state == State::ServerName);
        CHECK(whole.server_name() == "arne.local");
    }
}

TEST_CASE("bytes after the ClientHello are not read")
{
    std::string hello = openssl_client_hello("arne.local");
    auto peek = read(hello + record("\x01", 20) + "garbage");
    CHECK(peek.state == State::ServerName);
}

TEST_CASE("a hello that would end past the bound is too large, one that ends at it is read")
{
    std::string hello = openssl_client_hello("arne.local");
    CHECK(read(hello, hello.size()).state == State::ServerName);
    CHECK(read(hello, hello.size() - 1).state == State::TooLarge);
    // Known from the record header alone, before the rest arrives.
    CHECK(read(std::string_view(hello).substr(0, 5), 64).state == State::TooLarge);
    // Known from the handshake length even when every record is small.
    std::string split = reframe(hello, 8);
    CHECK(read(std::string_view(split).substr(0, 13), 64).state == State::TooLarge);
}

TEST_CASE("an HTTP request or other TLS records are not a ClientHello, told from the first bytes")
{
    CHECK(read("G").state == State::NotClientHello);
    CHECK(read("GET / HTTP/1.1\r\n").state == State::NotClientHello);
    CHECK(read(std::string("\x17\x03\x03\x00\x05hello", 10)).state == State::NotClientHello); // application data
    CHECK(read(std::string("\x16\x02", 2)).state == State::NotClientHello); // record version 2.x
    CHECK(read(std::string("\x80\x2e\x01\x00\x02", 5)).state == State::NotClientHello); // an SSLv2 hello
    CHECK(read("").state == State::NeedMore);
    CHECK(read(std::string("\x16", 1)).state == State::NeedMore);
}

TEST_CASE("a ServerHello or a ClientHello of another version is not a ClientHello")
{
    std::string hello = openssl_client_hello("arne.local");
    std::string server_hello = hello;
    server_hello[5] = 2;
    CHECK(read(server_hello).state == State::NotClientHello);
    std::string version = hello;
    version[9] = 2; // legacy_version 2.x
    CHECK(read(version).state == State::NotClientHello);
}

TEST_CASE("record lengths of zero or over 2^14 are malformed")
{
    CHECK(read(std::string("\x16\x03\x01\x00\x00", 5)).state == State::NotClientHello);
    CHECK(read(std::string("\x16\x03\x01\x40\x01", 5), 1 << 20).state == State::NotClientHello);
}

TEST_CASE("a record of another type in the middle of the hello is malformed")
{
    std::string split = reframe(openssl_client_hello("arne.local"), 50);
    split[55] = 21; // the second record says it is an alert
    auto peek = read(split);
    CHECK(peek.state == State::NotClientHello);
    CHECK(std::string(peek.reason) == "not a TLS handshake record");
}

TEST_CASE("a hand-made hello without extensions has no SNI")
{
    CHECK(read(hand_hello("")).state == State::NoServerName);
}

TEST_CASE("a hand-made hello with one host_name among other names yields it")
{
    std::string other(1, '\x07');
    put16(other, 3);
    other += "xyz";
    std::string unknown_ext;
    put16(unknown_ext, 0xff01);
    put16(unknown_ext, 1);
    unknown_ext += '\0';
    auto peek = read(hand_hello(extensions_block(unknown_ext + sni_extension(other + host_name_entry("a-b_c.local"))
        + unknown_ext)));
    CHECK(peek.state == State::ServerName);
    CHECK(peek.server_name() == "a-b_c.local");
}

TEST_CASE("lengths that disagree with what encloses them are malformed")
{
    std::string good = hand_hello(extensions_block(sni_extension(host_name_entry("arne.local"))));
    REQUIRE(read(good).state == State::ServerName);

    std::string extensions_longer = good;
    size_t extensions_at = 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2;
    extensions_longer[extensions_at + 1] += 1;
    CHECK(read(extensions_longer).state == State::NotClientHello);

    std::string name_longer = good;
    name_longer[name_longer.size() - 11] += 1; // host_name's length
    CHECK(read(name_longer).state == State::NotClientHello);

    std::string message_shorter = good;
    message_shorter[8] -= 1; // the handshake length ends inside an extension
    CHECK(read(message_shorter).state == State::NotClientHello);
}

TEST_CASE("a session id over 32 bytes, odd cipher suites or no compression are malformed")
{
    CHECK(read(hand_hello("", std::string(33, 's'))).state == State::NotClientHello);
    CHECK(read(hand_hello("", "", std::string("\x13\x01\x13", 3))).state == State::NotClientHello);
    CHECK(read(hand_hello("", "", "")).state == State::NotClientHello);
}

TEST_CASE("two server_name extensions, two host_names or an empty list are malformed")
{
    std::string sni = sni_extension(host_name_entry("arne.local"));
    CHECK(read(hand_hello(extensions_block(sni + sni))).state == State::NotClientHello);
    CHECK(read(hand_hello(extensions_block(sni_extension(host_name_entry("a.local") + host_name_entry("b.local")))))
              .state
        == State::NotClientHello);
    CHECK(read(hand_hello(extensions_block(sni_extension("")))).state == State::NotClientHello);
}

TEST_CASE("host names with bytes of no DNS name, or a leading or trailing dot, are malformed")
{
    for (char const* name : { "arne.local.", ".arne.local", "arne.local:443", "arne/x", "ar ne", "" }) {
        CAPTURE(name);
        auto peek = read(hand_hello(extensions_block(sni_extension(host_name_entry(name)))));
        CHECK(peek.state == State::NotClientHello);
        CHECK(peek.server_name().empty());
    }
    CHECK(read(hand_hello(extensions_block(sni_extension(host_name_entry(std::string(256, 'a'))))))
              .state
        == State::NotClientHello);
    auto longest = read(hand_hello(extensions_block(sni_extension(host_name_entry(std::string(255, 'a'))))));
    CHECK(longest.state == State::ServerName);
    CHECK(longest.server_name().size() == 255);
}
