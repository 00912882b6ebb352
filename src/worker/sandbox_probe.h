// The sandbox probe: a debug route compiled only into test builds
// (meson option sandbox_probe), with which the end-to-end tests prove that a
// worker cannot open another identity's files or run a program. Production
// builds do not contain it.
#pragma once

namespace posta {

class Router;

// GET /.posta-debug/sandbox-probe?path=ABSOLUTE_PATH tries, from inside the
// worker, to open `path` for reading and to run /bin/true in a child, and
// answers {"open": "ok" | "<errno name>", "exec": "ok" | "<errno name>" |
// "killed by signal N"}.
void add_sandbox_probe_route(Router&);

}
