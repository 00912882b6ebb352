// Exit codes of a worker process, shared by the worker that exits with them
// and the supervisor that logs them.
#pragma once

namespace posta {

enum class WorkerExit : int {
    Clean = 0,      // stopped by SIGTERM or channel close, after draining
    StartError = 3, // keys.json or inbox.db could not be opened; see the log
    Fatal = 4,      // a broken invariant (malformed channel message, ...)
};

}
