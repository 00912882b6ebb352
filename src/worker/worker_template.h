// The worker template: one image of the posta-server binary that the
// supervisor executes once (`posta-server --internal-worker-template`, with
// its channel on fd 3) and that forks every worker. It never touches
// traffic, keys or databases: it loads the libraries (binding every symbol
// at once, LD_BIND_NOW), initialises what is the same for every worker
// (libsodium, libcurl, SQLite, the compiled seccomp allowlist), and then only answers Fork
// messages. A worker so starts from a copy of a process that holds no byte of
// any identity, at the price of a fork, not of an exec and its dynamic
// linking (posta-server(8), "Isolation", has the figures). Workers share the
// template's address-space layout, which differs from the supervisor's.
//
// Each Fork goes through a middle process that shares the template's memory
// (clone with CLONE_VM | CLONE_VFORK, as posix_spawn does) and forks the
// worker: it reports the worker's pid and exits at once, so the worker is
// reparented to the supervisor, a subreaper, which reaps it and learns how
// it ended as for any child.
#pragma once

namespace posta {

// main() of the template. Returns its exit code (common/exit_codes.h) when
// its channel closes (the supervisor stopped or is gone); in a forked
// worker, does not return: the worker's exit code ends the process.
int run_worker_template();

}
