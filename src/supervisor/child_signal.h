// signal_child: the one way the supervisor signals a worker or the worker
// template. kill(2) reads a pid of 0 as "my process group" and -1 as "every
// process I may signal" (as root, the whole machine), so a pid the
// supervisor no longer knows (-1 after a death) must never reach it.
#pragma once

#include <sys/types.h>

namespace posta {

// Sends `signal` to the process `pid`; refuses (returns false, logs one
// error) a pid of 0 or less. Otherwise returns whether kill(2) succeeded.
bool signal_child(pid_t pid, int signal);

}
