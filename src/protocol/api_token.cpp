#include "api_token.h"

#include "protocol/base64url.h"

#include <array>
#include <sodium.h>

namespace posta {

std::string make_api_token()
{
    std::array<unsigned char, 32> bytes {};
    randombytes_buf(bytes.data(), bytes.size());
    std::string token = std::string(api_token_prefix) + base64url_encode(bytes);
    sodium_memzero(bytes.data(), bytes.size());
    return token;
}

TokenHash hash_api_token(std::string_view token)
{
    static_assert(std::tuple_size_v<TokenHash> == crypto_hash_sha256_BYTES);
    TokenHash hash {};
    crypto_hash_sha256(hash.data(), reinterpret_cast<unsigned char const*>(token.data()), token.size());
    return hash;
}

}
