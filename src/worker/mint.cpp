#include "mint.h"

#include "common/duration.h"
#include "protocol/api_token.h"
#include "worker/sign_in.h"

#include <sodium.h>

namespace posta {

Result<std::string> mint_secret(Store& store, MintKind kind, std::string_view identity_url)
{
    int64_t now = wall_clock_ms();
    switch (kind) {
    case MintKind::ApiToken: {
        std::string token = make_api_token();
        if (auto added = store.add_token(hash_api_token(token), now); !added) {
            sodium_memzero(token.data(), token.size());
            return added.error();
        }
        return token;
    }
    case MintKind::LoginLink: {
        auto code = mint_login_code(store, now);
        if (!code)
            return code.error();
        // The manifest's URL is canonical: no trailing slash.
        std::string link = std::string(identity_url) + "/#code=" + code.value();
        sodium_memzero(code->data(), code->size());
        return link;
    }
    }
    return Error::message("mint", "unknown kind of secret");
}

}
