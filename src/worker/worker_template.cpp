#include "worker_template.h"

#include "ipc/channel.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "common/process_title.h"
#include "ipc/worker_start.h"
#include "http/http_client.h"
#include "worker/huge_text.h"
#include "worker/sandbox.h"
#include "worker/worker.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <poll.h>
#include <sched.h>
#include <sodium.h>
#include <sqlite3.h>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace posta {

namespace {

// Room left between the template's frame and the middle process's stack.
constexpr size_t middle_stack_gap = 16 * 1024;

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

struct MiddleArgs {
    std::string const& slug;
    UniqueFd& worker_channel;
};

// The middle process: forks the worker, reports its pid and exits, so that
// the worker is reparented to the supervisor (a subreaper) and reaped by it
// like any child. It shares the template's memory (CLONE_VM) while the
// template waits (CLONE_VFORK), like posix_spawn's child: it costs no copy
// of the template's page tables and no teardown of its own, only the fork
// of the worker. It must not change what the template owns: it leaves
// `worker_channel` to the template, which closes its copy.
int run_middle(void* arg)
{
    auto& args = *static_cast<MiddleArgs*>(arg);
    pid_t worker = ::fork();
    if (worker == 0)
        become_worker(args.slug, std::move(args.worker_channel));
    int saved = errno;
    (void)send_forked(worker_channel_fd, worker > 0 ? worker : 0,
        worker > 0 ? std::string() : std::string("fork: ") + std::strerror(saved));
    return 0;
}

void fork_worker(std::string const& slug, UniqueFd worker_channel)
{
    MiddleArgs args { slug, worker_channel };
    // The middle runs on the template's own stack, below this frame (which
    // it does not touch, and which waits): the worker forked from it then
    // lives on the process's main stack, as any process does.
    auto* below = static_cast<char*>(__builtin_frame_address(0)) - middle_stack_gap;
    void* stack = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(below) & ~uintptr_t { 15 });
    pid_t middle = ::clone(run_middle, stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    if (middle < 0) {
        (void)send_forked(worker_channel_fd, 0, std::string("clone: ") + std::strerror(errno));
        return;
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

    // Before anything else, while this process has one thread: every worker
    // forked from here shares the copy (huge_text.h).
    if (auto moved = move_text_to_huge_pages(); !moved)
        log::warn("code stays in 4 KiB pages: %s", moved.error().text().c_str());
    else if (moved.value() > 0)
        log::debug("%zu KiB of code in huge pages", moved.value() / 1024);

    // Done once here instead of in every worker.
    if (sodium_init() < 0) {
        log::error("cannot start: sodium_init failed (libsodium could not initialise its random source)");
        return static_cast<int>(WorkerExit::Fatal);
    }
    if (auto curl = HttpClient::init_global(); !curl) {
        log::error("cannot start: %s", curl.error().text().c_str());
        return static_cast<int>(WorkerExit::Fatal);
    }
    if (int rc = sqlite3_initialize(); rc != SQLITE_OK) {
        log::error("cannot start: sqlite3_initialize: %s", sqlite3_errstr(rc));
        return static_cast<int>(WorkerExit::Fatal);
    }
    // A failure here is each worker's own start error when it tries again.
    if (auto prepared = prepare_sandbox(); !prepared)
        log::warn("sandbox: %s", prepared.error().text().c_str());

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
