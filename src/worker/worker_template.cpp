#include "worker_template.h"

#include "common/channel.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "common/process_title.h"
#include "common/worker_start.h"
#include "http/http_client.h"
#include "worker/worker.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <poll.h>
#include <sodium.h>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace posta {

namespace {

// In the forked worker: its channel end becomes fd 3 in place of the
// template's (dup2 closes that), and it is titled for its identity.
[[noreturn]] void become_worker(std::string const& slug, UniqueFd worker_channel)
{
    if (::dup2(worker_channel.get(), worker_channel_fd) < 0) {
        log::error("%s: cannot start: dup2: %s", slug.c_str(), std::strerror(errno));
        std::_Exit(static_cast<int>(WorkerExit::Fatal));
    }
    worker_channel.reset();
    set_process_title(worker_title(slug), "posta:" + slug);
    log::set_role(slug);
    int code = run_worker_on_channel(slug);
    // What the template registered to run at exit is the template's
    // business, not a worker's: a worker ends here, its buffers flushed.
    std::fflush(nullptr);
    std::_Exit(code);
}

void fork_worker(std::string const& slug, UniqueFd worker_channel)
{
    pid_t middle = ::fork();
    if (middle < 0) {
        (void)send_forked(worker_channel_fd, 0, std::string("fork: ") + std::strerror(errno));
        return;
    }
    if (middle == 0) {
        pid_t worker = ::fork();
        if (worker == 0)
            become_worker(slug, std::move(worker_channel));
        int saved = errno;
        (void)send_forked(worker_channel_fd, worker > 0 ? worker : 0,
            worker > 0 ? std::string() : std::string("fork: ") + std::strerror(saved));
        std::_Exit(0);
    }
    worker_channel.reset();
    while (::waitpid(middle, nullptr, 0) < 0 && errno == EINTR) {
    }
}

}

int run_worker_template()
{
    set_process_title("posta-server: worker template", "posta:template");
    log::set_role("template");
    // TERM and INT stay blocked, here and in each worker until its loop
    // handles them: a SIGTERM during a worker's start waits for it. A client that goes away mid-write is an EPIPE
    // to handle, not a signal; SIGHUP (`pkill -HUP posta-server`) reloads the
    // supervisor and must not kill us. The template itself ends with its
    // channel, or with the supervisor.
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    ::sigprocmask(SIG_BLOCK, &stops, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);

    // Done once here instead of in every worker.
    if (sodium_init() < 0) {
        log::error("cannot start: sodium_init failed (libsodium could not initialise its random source)");
        return static_cast<int>(WorkerExit::Fatal);
    }
    if (auto curl = HttpClient::init_global(); !curl) {
        log::error("cannot start: %s", curl.error().text().c_str());
        return static_cast<int>(WorkerExit::Fatal);
    }

    for (;;) {
        pollfd p { worker_channel_fd, POLLIN, 0 };
        if (::poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            log::error("poll: template channel: %s", std::strerror(errno));
            return static_cast<int>(WorkerExit::Fatal);
        }
        auto message = receive_message(worker_channel_fd);
        if (!message) {
            log::error("%s", message.error().text().c_str());
            return static_cast<int>(WorkerExit::Fatal);
        }
        if (!message.value())
            continue;
        switch (message.value()->type) {
        case MessageType::Closed:
            return static_cast<int>(WorkerExit::Clean);
        case MessageType::Fork:
            fork_worker(message.value()->prefix, std::move(message.value()->fd));
            break;
        default:
            log::error("template channel: unexpected message %u",
                static_cast<unsigned>(message.value()->type));
            return static_cast<int>(WorkerExit::Fatal);
        }
    }
}

}
