// `posta-server token SLUG` and `posta-server login SLUG`: an owner API
// token, or a one-time sign-in link <identity URL>/#code=<code>. While the
// daemon runs, the secret is minted by the identity's own worker, asked
// through the control socket (which admits only root and the daemon's user);
// with no daemon listening, the command opens the identity's inbox.db itself,
// as the daemon's user.
#pragma once

#include "ipc/channel.h"

#include <string>

namespace posta {

// Prints the secret alone on stdout and returns 0; otherwise one line on
// stderr and 1.
int run_mint_command(MintKind kind, std::string const& slug, std::string const& manifest_path,
    std::string const& config_path);

}
