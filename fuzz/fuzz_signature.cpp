// Fuzz target: the Posta-Signature header of a delivery and its check. The
// input's first line is the header value, the rest the body it claims to
// sign; the header lines are also read as a request's header fields. A
// parsed signature must format back to an equivalent header, and must verify
// against a key only if it is that key's signature of exactly those bytes.
#include "fuzz_invariant.h"
#include "http/http_message.h"
#include "protocol/signature.h"

#include <array>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <sodium.h>
#include <string>
#include <string_view>

using namespace posta;
using posta::fuzz::require;

namespace {

struct KeyPair {
    Ed25519PublicKey public_key {};
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> secret_key {};
};

KeyPair const& key_pair()
{
    static KeyPair const pair = [] {
        KeyPair out;
        std::array<unsigned char, crypto_sign_SEEDBYTES> seed {};
        seed.fill(7); // fixed, so that a crash reproduces
        crypto_sign_seed_keypair(out.public_key.data(), out.secret_key.data(), seed.data());
        return out;
    }();
    return pair;
}

// "Name: value" lines up to the first empty one, as a request's header fields.
Headers headers_of(std::string_view text)
{
    Headers out;
    while (!text.empty()) {
        size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        if (line.empty())
            break;
        size_t colon = line.find(':');
        if (colon != std::string_view::npos)
            out.add(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
        if (end == std::string_view::npos)
            break;
        text.remove_prefix(end + 1);
    }
    return out;
}

}

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    if (sodium_init() < 0)
        std::abort();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view input(reinterpret_cast<char const*>(data), size);
    size_t newline = input.find('\n');
    std::string_view value = input.substr(0, newline);
    std::string_view body = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

    auto from_headers = signature_from_headers(headers_of(input));
    if (!from_headers.ok())
        (void)from_headers.error().http_status();

    auto parsed = parse_signature_header(value);
    if (!parsed.ok()) {
        SignatureRejection const& r = parsed.error();
        require(r.problem != SignatureProblem::Missing, "a header that is there is reported missing");
        require(r.http_status() == 400 && !r.message.empty(), "a bad header is not a 400 with a message");
        return 0;
    }

    auto again = parse_signature_header(format_signature_header(*parsed));
    require(again.ok() && *again == *parsed, "a parsed signature does not survive format_signature_header");

    // The body's own leading bytes as a public key: any 32 bytes, most of
    // them not a valid point, must be refused or checked, never crash.
    Ed25519PublicKey stranger {};
    if (!body.empty())
        std::memcpy(stranger.data(), body.data(), std::min(body.size(), stranger.size()));
    (void)verify_signature(body, *parsed, stranger);

    KeyPair const& pair = key_pair();
    Ed25519Signature genuine = sign_detached(body, pair.secret_key);
    require(verify_signature(body, genuine, pair.public_key), "a genuine signature does not verify");
    require(verify_signature(body, *parsed, pair.public_key) == (*parsed == genuine),
        "a signature other than the key's own verifies");
    return 0;
}
