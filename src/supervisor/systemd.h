// systemd integration of the supervisor, without linking libsystemd: the
// sd_notify datagram protocol over $NOTIFY_SOCKET, and the sockets passed by
// socket activation ($LISTEN_PID, $LISTEN_FDS). Both are no-ops when the
// daemon was not started by systemd.
#pragma once

#include "common/unique_fd.h"

#include <string>
#include <string_view>
#include <vector>

namespace posta::systemd {

// Sends one state datagram ("READY=1", "RELOADING=1\nSTATUS=...") to
// $NOTIFY_SOCKET if it is set. Best effort: failures are ignored, as
// sd_notify's callers do.
void notify(std::string_view state);

// A socket passed by systemd, with its FileDescriptorName= ($LISTEN_FDNAMES;
// the socket unit's name when the unit sets none).
struct ActivatedSocket {
    UniqueFd fd;
    std::string name;
};

// Takes the listening sockets systemd passed to this process (fds 3...),
// made non-blocking and close-on-exec, and clears the variables so that no
// child sees them. Empty when there are none.
std::vector<ActivatedSocket> take_listen_fds();

}
