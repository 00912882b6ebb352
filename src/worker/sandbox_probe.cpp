#include "sandbox_probe.h"

#include "common/unique_fd.h"
#include "http/router.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

namespace posta {

namespace {

std::string errno_name(int error)
{
    char const* name = strerrorname_np(error);
    return name ? name : std::to_string(error);
}

std::string try_open(std::string const& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    return fd ? "ok" : errno_name(errno);
}

// In a child, so that a permitted exec does not replace the worker. The
// child reports execve's errno as its exit status; a seccomp kill shows as a
// signal.
std::string try_exec()
{
    pid_t pid = ::fork();
    if (pid < 0)
        return errno_name(errno);
    if (pid == 0) {
        char const* argv[] = { "/bin/true", nullptr };
        ::execv(argv[0], const_cast<char* const*>(argv));
        _exit(errno == 0 ? 127 : errno);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) { }
    if (WIFSIGNALED(status))
        return "killed by signal " + std::to_string(WTERMSIG(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return "ok";
    return errno_name(WEXITSTATUS(status));
}

}

void add_sandbox_probe_route(Router& router)
{
    router.add("GET", "/.posta-debug/sandbox-probe", [](Request request, Responder responder) {
        std::string path;
        if (request.query.rfind("path=", 0) == 0)
            path = request.query.substr(5); // test paths need no decoding
        nlohmann::json answer = { { "open", try_open(path) }, { "exec", try_exec() } };
        responder.respond(Response::json(200, answer));
    });
}

}
