// `posta-server token SLUG`: issues an owner API token. While the daemon
// runs it is minted by the identity's own worker, asked through the control
// socket (which admits only root and the daemon's user); with no daemon
// listening, the command opens the identity's inbox.db itself, as the
// daemon's user. `posta-server login SLUG` prints a one-time sign-in link,
// writing inbox.db itself.
#pragma once

#include <string>

namespace posta {

// Prints the token alone on stdout and returns 0; otherwise one line on
// stderr and 1.
int run_token_command(std::string const& slug, std::string const& manifest_path, std::string const& config_path);
// Prints <identity URL>/#code=<code> alone on stdout and returns 0; otherwise
// one line on stderr and 1.
int run_login_command(std::string const& slug, std::string const& manifest_path, std::string const& config_path);

}
