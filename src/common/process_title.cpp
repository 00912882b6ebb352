// How: the kernel shows a process's argv area as its command line. Once the
// byte at the end of that area is not NUL, /proc/PID/cmdline stops at the
// first NUL instead, so the title is followed by one NUL and the rest of the
// area is filled with spaces (what setproctitle(3) implementations do). The
// environment's strings usually follow argv in memory; like nginx, a title
// that needs them moves them to the heap first so getenv() keeps working.
#include "process_title.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/prctl.h>

extern char** environ;

namespace posta {

namespace {

char* g_area = nullptr;
size_t g_area_size = 0;
// The environment strings copied to the heap, kept for the process's life:
// unsetenv() drops pointers from environ, and they must stay valid (and
// reachable, for LeakSanitizer) all the same.
char** g_moved_strings = nullptr;

}

void init_process_title(int argc, char** argv)
{
    if (argc < 1 || !argv[0])
        return;
    char* end = argv[0];
    for (int i = 0; i < argc && argv[i] == end; ++i)
        end = argv[i] + std::strlen(argv[i]) + 1;
    size_t env_count = 0;
    while (environ && environ[env_count])
        ++env_count;
    // Take the environment's strings too when they follow argv contiguously.
    char* env_end = end;
    size_t taken = 0;
    for (; taken < env_count && environ[taken] == env_end; ++taken)
        env_end = environ[taken] + std::strlen(environ[taken]) + 1;
    if (taken > 0) {
        auto** moved = static_cast<char**>(std::malloc((env_count + 1) * sizeof(char*)));
        if (moved) {
            for (size_t i = 0; i < env_count; ++i)
                moved[i] = i < taken ? ::strdup(environ[i]) : environ[i];
            moved[env_count] = nullptr;
            g_moved_strings = static_cast<char**>(std::malloc(taken * sizeof(char*)));
            if (g_moved_strings && std::all_of(moved, moved + taken, [](char* s) { return s != nullptr; })) {
                std::copy(moved, moved + taken, g_moved_strings);
                environ = moved;
                end = env_end;
            }
        }
    }
    g_area = argv[0];
    g_area_size = static_cast<size_t>(end - argv[0]);
}

void set_process_title(std::string_view title, std::string_view comm)
{
    std::string name(comm.substr(0, 15));
    ::prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
    if (!g_area || g_area_size < 2)
        return;
    size_t length = std::min(title.size(), g_area_size - 2);
    std::memcpy(g_area, title.data(), length);
    g_area[length] = '\0';
    std::memset(g_area + length + 1, ' ', g_area_size - length - 1);
}

}
