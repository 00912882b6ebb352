// The parser classifies a bad header precisely (algorithm, encoding, length)
// because a sender's operator reads the code to find the bug; the checks are
// cheap and run before any key is fetched.
#include "signature.h"

#include "protocol/base64url.h"

namespace posta {

namespace {

constexpr std::string_view algorithm = "ed25519";
// 64 bytes in unpadded base64: ceil(64 * 8 / 6).
constexpr size_t encoded_length = (crypto_sign_BYTES * 8 + 5) / 6;

SignatureRejection reject(SignatureProblem problem, std::string message)
{
    return SignatureRejection { problem, std::move(message) };
}

bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

bool is_base64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool is_tchar(char c)
{
    // RFC 9110 section 5.6.2.
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string expected_form()
{
    return "write it as Posta-Signature: ed25519=<64 bytes in base64url without padding>";
}

}

std::string_view signature_problem_code(SignatureProblem problem)
{
    switch (problem) {
    case SignatureProblem::Missing:
        return "missing_signature";
    case SignatureProblem::Malformed:
        return "malformed_signature";
    case SignatureProblem::UnsupportedAlgorithm:
        return "unsupported_signature_algorithm";
    case SignatureProblem::InvalidEncoding:
        return "invalid_signature_encoding";
    case SignatureProblem::InvalidLength:
        return "invalid_signature_length";
    }
    return "malformed_signature";
}

Result<Ed25519Signature, SignatureRejection> parse_signature_header(std::string_view value)
{
    while (!value.empty() && is_space(value.front()))
        value.remove_prefix(1);
    while (!value.empty() && is_space(value.back()))
        value.remove_suffix(1);

    size_t equals = value.find('=');
    if (value.empty() || equals == std::string_view::npos || equals == 0)
        return reject(SignatureProblem::Malformed, "the Posta-Signature header is not \"algorithm=signature\"; " + expected_form());
    std::string_view label = value.substr(0, equals);
    std::string_view encoded = value.substr(equals + 1);
    for (char c : label) {
        if (!is_tchar(c))
            return reject(SignatureProblem::Malformed, "the Posta-Signature header is not \"algorithm=signature\"; " + expected_form());
    }
    if (!iequals(label, algorithm))
        return reject(SignatureProblem::UnsupportedAlgorithm,
            "the signature algorithm \"" + std::string(label) + "\" is not supported; posta version 1 signs with ed25519");

    for (char c : encoded) {
        if (c == ',' || c == ';' || is_space(c))
            return reject(SignatureProblem::Malformed,
                "the Posta-Signature header has more than one signature, parameters or spaces; " + expected_form());
    }
    for (char c : encoded) {
        if (c == '=')
            return reject(SignatureProblem::InvalidEncoding, "the signature has '=' padding; base64url in posta is written without padding");
        if (!is_base64url(c))
            return reject(SignatureProblem::InvalidEncoding,
                "the signature is not base64url (A-Z a-z 0-9 - _); standard base64 ('+', '/') is not accepted");
    }
    if (encoded.size() % 4 == 1)
        return reject(SignatureProblem::InvalidEncoding, "the signature is not valid base64url (its length is impossible)");
    if (encoded.size() != encoded_length)
        return reject(SignatureProblem::InvalidLength,
            "the signature decodes to " + std::to_string(encoded.size() * 6 / 8) + " bytes; an ed25519 signature is 64 bytes ("
                + std::to_string(encoded_length) + " base64url characters)");

    Ed25519Signature signature {};
    if (!base64url_decode_exact(encoded, signature))
        return reject(SignatureProblem::InvalidEncoding, "the signature is not canonical base64url (its last character has unused bits set)");
    return signature;
}

Result<Ed25519Signature, SignatureRejection> signature_from_headers(Headers const& headers)
{
    size_t count = headers.count(signature_header);
    if (count == 0)
        return reject(SignatureProblem::Missing, "the delivery has no Posta-Signature header; " + expected_form());
    if (count > 1)
        return reject(SignatureProblem::Malformed, "the Posta-Signature header is given more than once; send exactly one");
    return parse_signature_header(*headers.get(signature_header));
}

std::string format_signature_header(Ed25519Signature const& signature)
{
    return std::string(algorithm) + "=" + base64url_encode(signature);
}

bool verify_signature(std::string_view bytes, Ed25519Signature const& signature, Ed25519PublicKey const& public_key)
{
    return crypto_sign_verify_detached(signature.data(), reinterpret_cast<unsigned char const*>(bytes.data()), bytes.size(),
               public_key.data())
        == 0;
}

Ed25519Signature sign_detached(std::string_view bytes, std::span<unsigned char const, crypto_sign_SECRETKEYBYTES> secret_key)
{
    Ed25519Signature out {};
    crypto_sign_detached(out.data(), nullptr, reinterpret_cast<unsigned char const*>(bytes.data()), bytes.size(), secret_key.data());
    return out;
}

}
