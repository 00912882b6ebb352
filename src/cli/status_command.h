// `posta-server status`: asks the running supervisor over its control socket
// and prints each identity's worker state, or the raw JSON with --json.
#pragma once

#include <string>

namespace posta {

// Returns the process exit code: 0 when the daemon answered, 1 otherwise
// (with a message naming the socket and what to check).
int run_status_command(std::string const& control_socket, bool json);

}
