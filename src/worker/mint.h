// Minting: the one-time secrets an identity's owner is given (an API token),
// made and stored (as a hash) in the identity's inbox.db. The one code both
// paths run: the worker, asked by the supervisor on the owner's behalf
// through the control socket, and `posta-server token` writing the database
// itself when no daemon runs.
#pragma once

#include "common/channel.h"
#include "common/result.h"
#include "worker/store.h"

#include <string>

namespace posta {

// Makes a fresh secret of `kind`, stores what verifies it in `store`, and
// returns the secret itself, which is kept nowhere else: the caller shows it
// once and wipes it (sodium_memzero). libsodium must be initialised.
Result<std::string> mint_secret(Store& store, MintKind kind);

}
