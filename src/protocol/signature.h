// Delivery signatures: the `Posta-Signature: ed25519=<base64url>` header of
// `POST /inbox` (PROTOCOL.md, "Delivery"), a detached ed25519 signature over
// the exact body bytes. The inbox parses and verifies it; the outbox signs
// and writes it. Pure apart from libsodium (sodium_init() must have run).
#pragma once

#include "common/result.h"
#include "http/http_message.h"

#include <array>
#include <cstdint>
#include <sodium.h>
#include <span>
#include <string>
#include <string_view>

namespace posta {

// The same array types as Keys::Signature and Keys::PublicKey.
using Ed25519Signature = std::array<unsigned char, crypto_sign_BYTES>;
using Ed25519PublicKey = std::array<unsigned char, crypto_sign_PUBLICKEYBYTES>;

// The name of the header, as the protocol spells it.
constexpr std::string_view signature_header = "Posta-Signature";

enum class SignatureProblem : uint8_t {
    Missing,              // missing_signature (401): no Posta-Signature header
    Malformed,            // malformed_signature (400): not one "algorithm=value", or the header repeated
    UnsupportedAlgorithm, // unsupported_signature_algorithm (400): an algorithm other than ed25519
    InvalidEncoding,      // invalid_signature_encoding (400): not unpadded base64url
    InvalidLength,        // invalid_signature_length (400): base64url, but not of 64 bytes
};

std::string_view signature_problem_code(SignatureProblem);

struct SignatureRejection {
    SignatureProblem problem {};
    std::string message; // one sentence for the sender

    std::string_view code() const { return signature_problem_code(problem); }
    // 401 for a missing signature (no authentication at all), else 400: a
    // header that is there but unreadable is a malformed request. A
    // signature that parses but does not verify is the caller's 401.
    int http_status() const { return problem == SignatureProblem::Missing ? 401 : 400; }
};

// Parses one header value: optional white space, "ed25519" (any case, like
// other HTTP tokens), '=', exactly 86 characters of unpadded base64url that
// decode to 64 bytes (canonical: unused low bits zero), optional white space.
// Anything more (a second signature after ',', parameters after ';', spaces
// inside) is malformed: version 1 has one algorithm and one signature.
Result<Ed25519Signature, SignatureRejection> parse_signature_header(std::string_view value);

// The Posta-Signature of a request: missing when absent, malformed when the
// header occurs more than once, else parse_signature_header() of its value.
Result<Ed25519Signature, SignatureRejection> signature_from_headers(Headers const& headers);

// "ed25519=<86 characters>", the header value for `signature`.
std::string format_signature_header(Ed25519Signature const& signature);

// Whether `signature` is `public_key`'s ed25519 signature of exactly `bytes`
// (crypto_sign_verify_detached, which also refuses non-canonical and
// small-order keys and points). Never throws.
bool verify_signature(std::string_view bytes, Ed25519Signature const& signature, Ed25519PublicKey const& public_key);

// The detached signature of `bytes` with a libsodium secret key (seed and
// public key, 64 bytes). The worker signs through Keys::sign(), which owns
// its secret; this is for callers holding a key of their own, like tests.
Ed25519Signature sign_detached(std::string_view bytes, std::span<unsigned char const, crypto_sign_SECRETKEYBYTES> secret_key);

}
