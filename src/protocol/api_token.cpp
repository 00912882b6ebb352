#include "api_token.h"

#include "protocol/base64url.h"

#include <array>
#include <sodium.h>

namespace posta {

std::string make_secret(std::string_view prefix)
{
    std::array<unsigned char, 32> bytes {};
    randombytes_buf(bytes.data(), bytes.size());
    std::string secret = std::string(prefix) + base64url_encode(bytes);
    sodium_memzero(bytes.data(), bytes.size());
    return secret;
}

TokenHash hash_secret(std::string_view secret)
{
    static_assert(std::tuple_size_v<TokenHash> == crypto_hash_sha256_BYTES);
    TokenHash hash {};
    crypto_hash_sha256(hash.data(), reinterpret_cast<unsigned char const*>(secret.data()), secret.size());
    return hash;
}

}
