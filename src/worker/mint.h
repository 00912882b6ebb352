// Minting: the secrets an identity's owner is given (an API token, a
// one-time sign-in link), made and stored (as a hash) in the identity's
// inbox.db. The one code both paths run: the worker, asked by the supervisor
// on the owner's behalf through the control socket, and `posta-server token`
// and `login` writing the database themselves when no daemon runs.
#pragma once

#include "ipc/channel.h"
#include "common/result.h"
#include "worker/store.h"

#include <string>

namespace posta {

// Makes a fresh secret of `kind`, stores what verifies it in `store`, and
// returns what the owner is shown: the token, or the link
// `identity_url`/#code=<code> (worker/sign_in.h; the code is in the
// fragment, so a browser never sends it in a request line or a Referer). It
// is kept nowhere else: the caller shows it once and wipes it
// (sodium_memzero). libsodium must be initialised.
Result<std::string> mint_secret(Store& store, MintKind kind, std::string_view identity_url);

}
