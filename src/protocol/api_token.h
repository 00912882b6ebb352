// Owner API tokens (PROTOCOL.md, "Owner API"): `posta-server token` makes
// one and stores its hash in the identity's inbox.db; the worker's ApiServer
// hashes each Bearer token it is shown and looks the hash up. The token
// itself is printed once and kept nowhere.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace posta {

// What every token starts with, so that one pasted somewhere it should not
// be is recognisable (and findable by secret scanners).
using TokenHash = std::array<unsigned char, 32>; // SHA-256

constexpr std::string_view api_token_prefix = "posta_";

// A fresh token: api_token_prefix + base64url of 32 random bytes (libsodium;
// sodium_init() first), 49 characters.
std::string make_api_token();

// SHA-256 of the token's bytes, as stored in api_tokens.hash. The token has
// 256 random bits, so a fast unsalted hash is enough: there is nothing to
// guess from it.
TokenHash hash_api_token(std::string_view token);

}
