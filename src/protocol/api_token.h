// Owner API tokens (PROTOCOL.md, "Owner API"): `posta-server token` makes
// one and stores its hash in the identity's inbox.db; the worker's ApiServer
// hashes each Bearer token it is shown and looks the hash up. The token
// itself is printed once and kept nowhere. Sign-in codes and session
// secrets (worker/sign_in.h) are made and hashed the same way.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace posta {

// What every token starts with, so that one pasted somewhere it should not
// be is recognisable (and findable by secret scanners).
using TokenHash = std::array<unsigned char, 32>; // SHA-256

constexpr std::string_view api_token_prefix = "posta_";

// A fresh secret: `prefix` + base64url of 32 random bytes (libsodium;
// sodium_init() first). API tokens, the sign-in codes of `posta-server
// login` and the secrets of session cookies are all made so.
std::string make_secret(std::string_view prefix);

// SHA-256 of a secret's bytes, as the store keeps it (api_tokens.hash,
// login_codes.hash, sessions.hash). The secret has 256 random bits, so a
// fast unsalted hash is enough: there is nothing to guess from it.
TokenHash hash_secret(std::string_view secret);

// A fresh token: make_secret(api_token_prefix), 49 characters.
inline std::string make_api_token() { return make_secret(api_token_prefix); }
inline TokenHash hash_api_token(std::string_view token) { return hash_secret(token); }

}
