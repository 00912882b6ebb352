// The worker: one process per identity, forked by the worker template
// (worker_template.h) and handed to the supervisor. It opens its identity's
// keys.json and inbox.db itself, reports ready on its channel, and serves the
// connections the supervisor passes to it until told to stop.
#pragma once

#include "common/exit_codes.h"

#include <string>

namespace posta {

// The forked worker's life: takes the start message off its channel (fd 3),
// waits to be the supervisor's child, and serves. Returns the process exit
// code (common/exit_codes.h).
int run_worker_on_channel(std::string const& slug);

}
