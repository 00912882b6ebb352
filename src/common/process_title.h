// The process title: what `ps` and /proc/PID/cmdline show, and the short
// name (comm) that `top` and `pkill` see. Set once per process by main():
// "posta-server: supervisor", "posta-server: worker arne" (like nginx's
// "nginx: worker process").
#pragma once

#include <string_view>

namespace posta {

// Keeps where argv lives; call first thing in main(), before anything reads
// the environment through a saved pointer (the title may take over the
// environment's strings, which are moved to the heap first).
void init_process_title(int argc, char** argv);

// Writes `title` over argv (cut to what fits) and sets comm to `comm`
// (at most 15 bytes, cut to fit).
void set_process_title(std::string_view title, std::string_view comm);

}
