// WorkerStart: how a worker process comes to life. The supervisor spawns one
// fresh image of the posta-server binary in its internal template mode, with
// the template's channel on fd 3 and nothing else but stdin, stdout and
// stderr; the template forks each worker on a channel of its own
// (worker/worker_template.h). The supervisor then sends the worker
// everything it needs as that channel's first message: its identity entry,
// the config and the policy (the pattern of OpenBSD's proc_exec). A worker so
// holds no byte of the supervisor's memory. Both ends live here.
#pragma once

#include "config/config.h"
#include "config/manifest.h"
#include "ipc/policy.h"
#include "common/result.h"

#include <string>
#include <string_view>
#include <sys/types.h>

namespace posta {

// The template's channel in the template, and each worker's in the worker.
inline constexpr int worker_channel_fd = 3;

// argv[1] of the spawned template. Internal: not a subcommand, not
// documented; the program refuses it unless fd 3 is a channel.
inline constexpr char const template_mode_arg[] = "--internal-worker-template";

struct WorkerStart {
    IdentityEntry identity;
    Config config;
    Policy policy;
    pid_t supervisor = 0; // the worker exits at once if its parent is another

    // A length-prefixed text form for the channel (any byte may appear in
    // a value); deserialize() rejects anything it did not write.
    std::string serialize() const;
    static Result<WorkerStart> deserialize(std::string_view);
};

// Starts `exe` (the supervisor passes /proc/self/exe) in template mode:
// `channel` becomes fd 3, `stderr_fd` fd 2 when given, every other fd but
// 0-2 is closed, the signal mask is inherited (each worker unblocks what it
// handles once its loop is ready). Does not wait for anything.
Result<pid_t> spawn_template(char const* exe, int channel, int stderr_fd = -1);

// The title `ps` shows for a worker: "posta-server: worker arne".
std::string worker_title(std::string_view slug);

}
