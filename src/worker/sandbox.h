// Sandbox: what a worker gives up once it has opened its identity's files and
// before it serves anyone, so that a compromised worker (a parser bug, a bad
// library) cannot reach another identity's keys or messages: no new
// privileges, no core dumps, and with Landlock a filesystem view of its own
// state folder (read-write) plus the few read-only paths a worker needs
// (resolver files, CA certificates, shared libraries), no program execution,
// no signals to processes outside its own domain, and a seccomp allowlist of
// the system calls a worker makes (no execve, ptrace, mount, ...).
#pragma once

#include "common/result.h"

#include <string>

namespace posta {

struct SandboxReport {
    int landlock_abi = 0;      // 0: the kernel has no Landlock
    bool signals_scoped = false; // Landlock ABI >= 6
    bool seccomp = false;
    std::string text() const;
};

// Applies the sandbox to the calling process, for good. `identity_dir` is
// <state_dir>/<slug>. A kernel without Landlock is not an error (the report
// says so and the caller logs one warning); a failure to apply what the
// kernel offers is.
Result<SandboxReport> apply_sandbox(std::string const& identity_dir);

// Does once, in the worker template before it forks, the part of applying
// the sandbox that is the same for every worker (compiling the seccomp
// allowlist); apply_sandbox() in a forked worker then only loads it.
// Without it, apply_sandbox() compiles the allowlist itself.
Result<void> prepare_sandbox();

// Sets the calling process's RLIMIT_NOFILE, soft and hard, to `wanted` or the
// current hard limit if that is lower, so it cannot be raised again; returns
// the limit set.
Result<size_t> limit_open_files(size_t wanted);

}
