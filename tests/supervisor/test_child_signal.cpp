// signal_child (supervisor/child_signal.h): a pid the supervisor lost (-1,
// 0) never reaches kill(2), which would read it as a process group or as
// every process; a real child is signalled.
#include "supervisor/child_signal.h"

#include <doctest/doctest.h>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

using namespace posta;

TEST_CASE("a pid of 0 or less is refused, not read by kill(2) as a group or every process")
{
    // Signal 0 only asks whether the process could be signalled, so this
    // test harms nothing even where the guard is missing: kill(-1, 0) and
    // kill(0, 0) succeed there, and the checks fail.
    CHECK_FALSE(signal_child(-1, 0));
    CHECK_FALSE(signal_child(0, 0));
    CHECK_FALSE(signal_child(-getpid(), 0));
}

TEST_CASE("a child is signalled")
{
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    CHECK(signal_child(child, SIGKILL));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
}
