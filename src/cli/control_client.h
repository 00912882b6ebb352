// The command line's side of the control socket (supervisor/control_server.h):
// connect, send one request line, read the one answer line. Used by `status`
// and `token`.
#pragma once

#include "common/result.h"

#include <chrono>
#include <string>
#include <string_view>

namespace posta {

// Asks the daemon listening on `socket_path` and returns its answer (JSON,
// without the newline). Blocks for at most `timeout` waiting for it. The
// error names the socket; no_daemon() tells whether it means that no daemon
// is running.
Result<std::string> ask_daemon(std::string const& socket_path, std::string_view request,
    std::chrono::milliseconds timeout);

// Whether `ask_daemon` failed because nothing listens on the socket: it does
// not exist, or is a stale one (connection refused).
bool no_daemon(Error const& error);

}
