// The worker: one process per identity, forked by the supervisor. It opens its
// identity's keys.json and inbox.db itself, reports ready on its channel, and
// serves the connections the supervisor passes to it until told to stop.
#pragma once

#include "common/config.h"
#include "common/exit_codes.h"
#include "common/manifest.h"
#include "common/policy.h"
#include "common/unique_fd.h"

namespace posta {

struct WorkerSetup {
    IdentityEntry identity;
    Config config;
    UniqueFd channel; // the worker's end of its private channel
    Policy policy;    // replaced by Policy messages after reloads
};

// Runs the worker in the calling, freshly forked process, with a loop of its
// own. Returns the process exit code; the caller passes it to _exit().
int run_worker(WorkerSetup setup);

}
