// Unix stream sockets by path: the control socket's address, and a blocking
// connect to it. The supervisor binds the control socket and probes a stale
// one with these; the command line tools ask the daemon through them.
#pragma once

#include "common/result.h"
#include "common/unique_fd.h"

#include <string>
#include <sys/un.h>

namespace posta {

// The address of `path`; an error naming it when it does not fit sun_path
// (with its terminating NUL).
Result<sockaddr_un> unix_socket_address(std::string const& path);

// A close-on-exec, blocking stream socket connected to `path`. A failed
// connect is the errno error of "connect" (ECONNREFUSED: a socket file that
// nobody listens on; ENOENT: no socket there).
Result<UniqueFd> connect_unix(std::string const& path);

}
