// TemplateProcess: the supervisor's end of the worker template
// (worker/worker_template.h), the one exec'd image of the binary that forks
// every worker. Started on first use and again after it dies. Requests are
// asynchronous and answered in order, a few in flight at a time, so that a
// thousand workers starting at once cost the supervisor's loop no waiting.
//
// Ordering the supervisor relies on: the template answers a fork (the new
// worker's pid) before that worker can send anything on its channel or be
// reaped by us, so a pid that the reaper does not know yet, or a message
// from a worker whose pid is not known yet, is resolved by
// collect_answers().
#pragma once

#include "common/result.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <sys/types.h>

namespace posta {

class TemplateProcess {
public:
    // The new worker's pid, or why there is none. Runs from the loop, or at
    // once from fork_worker() when the template cannot be started.
    using Answer = std::function<void(Result<pid_t>)>;

    // `exe`: the binary to execute in template mode (/proc/self/exe in the
    // supervisor, $POSTA_SERVER in tests); `stderr_fd`: the template's and so
    // every worker's fd 2 when given, else ours. The owner must be a
    // subreaper (PR_SET_CHILD_SUBREAPER) that reaps with waitpid and offers
    // each pid to on_reaped().
    TemplateProcess(uv_loop_t* loop, std::string exe, int stderr_fd = -1);
    ~TemplateProcess();
    TemplateProcess(TemplateProcess const&) = delete;
    TemplateProcess& operator=(TemplateProcess const&) = delete;

    // Asks for a worker for `slug` that serves on `worker_channel` (its end
    // of a make_channel() pair). The worker is our child once it has an
    // answer. A template that does not answer within a bound is killed, its
    // requests fail, and the next request starts a new one.
    void fork_worker(std::string slug, UniqueFd worker_channel, Answer answer);

    // Runs the answers the template has sent so far.
    void collect_answers();

    // True when `pid` (reaped by the owner) was the template's.
    bool on_reaped(pid_t pid);

    // Closes the channel and the handles (the template exits; workers live
    // on). Unanswered requests fail.
    void close();

    pid_t pid() const { return m_pid; }

private:
    struct Request {
        std::string slug;
        UniqueFd worker_channel; // ours until sent
        Answer answer;
    };

    Result<void> start();
    void send_requests();
    void on_timeout();
    // Fails every request and ends this template (SIGKILL; reaped here).
    void abandon(Error const& why);

    uv_loop_t* m_loop;
    std::string m_exe;
    int m_stderr_fd;
    UniqueFd m_channel;
    pid_t m_pid = -1;
    UvHandle<uv_poll_t> m_poll;
    UvHandle<uv_timer_t> m_timer; // bounds the wait for the oldest answer
    std::deque<Request> m_unsent;
    std::deque<Request> m_sent;
};

}
