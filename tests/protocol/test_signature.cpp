#include "protocol/signature.h"

#include "protocol/base64url.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

// A keypair from a fixed seed (bytes 0..31), so signatures are reproducible:
// ed25519 signing is deterministic.
struct TestKeys {
    Ed25519PublicKey public_key {};
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> secret_key {};

    explicit TestKeys(unsigned char first_seed_byte = 0)
    {
        REQUIRE(sodium_init() >= 0);
        std::array<unsigned char, crypto_sign_SEEDBYTES> seed {};
        for (size_t i = 0; i < seed.size(); ++i)
            seed[i] = static_cast<unsigned char>(first_seed_byte + i);
        crypto_sign_seed_keypair(public_key.data(), secret_key.data(), seed.data());
    }
};

template<size_t N>
std::array<unsigned char, N> from_hex(std::string_view hex)
{
    std::array<unsigned char, N> out {};
    REQUIRE(hex.size() == 2 * N);
    REQUIRE(sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, nullptr, nullptr) == 0);
    return out;
}

std::string const body = "{\"posta\":1,\"id\":\"AAECAwQFBgcICQoLDA0ODw\",\"from\":\"http://arne.local:8080\","
                         "\"to\":\"https://marcus.example\",\"sent_at\":\"2026-11-27T08:59:00Z\",\"subject\":\"Hello\","
                         "\"content_type\":\"text/plain\",\"body\":\"Hi Marcus\"}";

// The header value for `body` signed with TestKeys(0), computed once with
// libsodium and pinned: a change here means signatures changed on the wire.
constexpr std::string_view pinned_header = "ed25519=B53D1BYbVmP-A14YVU90t0yLSHWsT9xchXN8gAgnypLeuF8tun08cyDbjqQLoelpewCa5P2qYEzduQgxMz3bBQ";

bool refused_with(std::string_view value, std::string_view code)
{
    auto parsed = parse_signature_header(value);
    if (parsed) {
        MESSAGE("accepted: ", value);
        return false;
    }
    if (parsed.error().code() != code || parsed.error().message.empty()) {
        MESSAGE("got ", parsed.error().code(), ": ", parsed.error().message);
        return false;
    }
    return true;
}

std::string header_for(std::string_view bytes, TestKeys const& keys)
{
    return format_signature_header(sign_detached(bytes, keys.secret_key));
}

}

TEST_CASE("a fixed seed gives the known public key and a pinned signature")
{
    TestKeys keys;
    CHECK(base64url_encode(keys.public_key) == "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg");
    CHECK(header_for(body, keys) == pinned_header);
}

TEST_CASE("the RFC 8032 test vectors verify")
{
    // Refs: RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2.
    auto pk1 = from_hex<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    auto sig1 = from_hex<64>("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    CHECK(verify_signature("", sig1, pk1));
    auto pk2 = from_hex<32>("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
    auto sig2 = from_hex<64>("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
    CHECK(verify_signature("\x72", sig2, pk2));
    CHECK_FALSE(verify_signature("\x72", sig1, pk1));
}

TEST_CASE("a signature made by sign_detached verifies through its header")
{
    TestKeys keys;
    auto parsed = parse_signature_header(header_for(body, keys));
    REQUIRE(parsed.ok());
    CHECK(verify_signature(body, *parsed, keys.public_key));
}

TEST_CASE("a tampered body fails verification")
{
    TestKeys keys;
    auto signature = sign_detached(body, keys.secret_key);
    std::string tampered = body;
    tampered.replace(tampered.find("Hi Marcus"), 2, "Yo");
    CHECK_FALSE(verify_signature(tampered, signature, keys.public_key));
    CHECK_FALSE(verify_signature(body + " ", signature, keys.public_key));
    CHECK_FALSE(verify_signature(body.substr(1), signature, keys.public_key));
}

TEST_CASE("a signature checked against another key fails")
{
    TestKeys signer(0);
    TestKeys other(1);
    auto signature = sign_detached(body, signer.secret_key);
    CHECK_FALSE(verify_signature(body, signature, other.public_key));
    CHECK(verify_signature(body, signature, signer.public_key));
}

TEST_CASE("a signature with one bit flipped fails")
{
    TestKeys keys;
    auto signature = sign_detached(body, keys.secret_key);
    for (size_t i : { size_t(0), size_t(31), size_t(32), size_t(63) }) {
        auto bad = signature;
        bad[i] ^= 1;
        CAPTURE(i);
        CHECK_FALSE(verify_signature(body, bad, keys.public_key));
    }
}

TEST_CASE("the algorithm name is matched without regard to case and white space is trimmed")
{
    TestKeys keys;
    std::string encoded = header_for(body, keys).substr(8);
    for (std::string value : { "ED25519=" + encoded, "Ed25519=" + encoded, "  ed25519=" + encoded + "\t " }) {
        CAPTURE(value);
        auto parsed = parse_signature_header(value);
        REQUIRE(parsed.ok());
        CHECK(verify_signature(body, *parsed, keys.public_key));
    }
}

TEST_CASE("another signature algorithm is refused as unsupported_signature_algorithm")
{
    std::string encoded(86, 'A');
    CHECK(refused_with("rsa-sha256=" + encoded, "unsupported_signature_algorithm"));
    CHECK(refused_with("ed448=" + encoded, "unsupported_signature_algorithm"));
    CHECK(refused_with("ed25519ph=" + encoded, "unsupported_signature_algorithm"));
}

TEST_CASE("a header that is not algorithm=value is refused as malformed_signature")
{
    std::string encoded(86, 'A');
    for (std::string value : { std::string(), std::string("   "), encoded, "=" + encoded, "ed 25519=" + encoded,
             "ed25519:" + encoded, "ed25519=" + encoded + ", ed25519=" + encoded, "ed25519=" + encoded + ";key=1",
             "ed25519 =" + encoded, "ed25519= " + encoded, "ed25519=" + encoded.substr(0, 40) + " " + encoded.substr(40) }) {
        CAPTURE(value);
        CHECK(refused_with(value, "malformed_signature"));
    }
}

TEST_CASE("a signature that is not unpadded base64url is refused as invalid_signature_encoding")
{
    TestKeys keys;
    std::string encoded = header_for(body, keys).substr(8);
    std::string standard = encoded;
    standard[10] = '+';
    std::string slash = encoded;
    slash[10] = '/';
    // The last of 86 characters carries 2 bits of the signature and 4 unused
    // bits that must be zero; setting the lowest makes a non-canonical text
    // that a lax decoder would read as the same signature.
    std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string noncanonical = encoded;
    REQUIRE(alphabet.find(encoded.back()) % 16 == 0);
    noncanonical.back() = alphabet[alphabet.find(encoded.back()) | 1];
    for (std::string value : { "ed25519=" + standard, "ed25519=" + slash, "ed25519=" + encoded + "==",
             "ed25519=" + encoded.substr(0, 85), "ed25519=" + encoded.substr(0, 40) + "*" + encoded.substr(41),
             "ed25519=" + encoded.substr(0, 40) + "\xc3\xa9" + encoded.substr(42), "ed25519=" + noncanonical }) {
        CAPTURE(value);
        CHECK(refused_with(value, "invalid_signature_encoding"));
    }
}

TEST_CASE("a signature of the wrong length is refused as invalid_signature_length")
{
    std::array<unsigned char, 63> short_sig {};
    std::array<unsigned char, 65> long_sig {};
    std::array<unsigned char, 32> key_sized {};
    CHECK(refused_with("ed25519=" + base64url_encode(short_sig), "invalid_signature_length"));
    CHECK(refused_with("ed25519=" + base64url_encode(long_sig), "invalid_signature_length"));
    CHECK(refused_with("ed25519=" + base64url_encode(key_sized), "invalid_signature_length"));
    CHECK(refused_with("ed25519=", "invalid_signature_length"));
}

TEST_CASE("a request without Posta-Signature is refused as missing_signature with 401")
{
    Headers headers;
    headers.add("Content-Type", "application/json");
    auto parsed = signature_from_headers(headers);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code() == "missing_signature");
    CHECK(parsed.error().http_status() == 401);
}

TEST_CASE("a request with two Posta-Signature headers is refused as malformed_signature")
{
    TestKeys keys;
    Headers headers;
    headers.add("Posta-Signature", header_for(body, keys));
    headers.add("posta-signature", header_for(body, keys));
    auto parsed = signature_from_headers(headers);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code() == "malformed_signature");
    CHECK(parsed.error().http_status() == 400);
}

TEST_CASE("the Posta-Signature header is found whatever the case of its name")
{
    TestKeys keys;
    Headers headers;
    headers.add("posta-SIGNATURE", header_for(body, keys));
    auto parsed = signature_from_headers(headers);
    REQUIRE(parsed.ok());
    CHECK(verify_signature(body, *parsed, keys.public_key));
}

TEST_CASE("a formatted header is ed25519= and 86 characters")
{
    TestKeys keys;
    std::string header = header_for(body, keys);
    CHECK(header.size() == 8 + 86);
    CHECK(header.rfind("ed25519=", 0) == 0);
}
