#include "mint.h"

#include "protocol/api_token.h"

#include <chrono>
#include <sodium.h>

namespace posta {

Result<std::string> mint_secret(Store& store, MintKind kind)
{
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    switch (kind) {
    case MintKind::ApiToken: {
        std::string token = make_api_token();
        if (auto added = store.add_token(hash_api_token(token), now.count()); !added) {
            sodium_memzero(token.data(), token.size());
            return added.error();
        }
        return token;
    }
    }
    return Error::message("mint", "unknown kind of secret");
}

}
