#include "child_signal.h"

#include "common/log.h"

#include <csignal>

namespace posta {

bool signal_child(pid_t pid, int signal)
{
    if (pid <= 0) {
        log::error("refusing to send signal %d to pid %d: not one process", signal, static_cast<int>(pid));
        return false;
    }
    return ::kill(pid, signal) == 0;
}

}
