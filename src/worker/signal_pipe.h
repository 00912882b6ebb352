// SignalPipe: how the worker's stop signals (SIGTERM, SIGINT) reach its
// loop. A handler writes the signal number into a close-on-exec pipe whose
// read end the worker watches with a uv_poll. One per process, created first
// thing in the worker, so a signal during a slow start waits in the pipe.
#pragma once

#include "common/result.h"
#include "common/unique_fd.h"

#include <initializer_list>
#include <vector>

namespace posta {

class SignalPipe {
public:
    // Installs handlers for `signals` (SA_RESTART, every signal blocked while
    // one runs). Fails when a SignalPipe already exists in this process.
    static Result<SignalPipe> open(std::initializer_list<int> signals);

    SignalPipe(SignalPipe&&) noexcept;
    SignalPipe& operator=(SignalPipe&&) = delete;
    SignalPipe(SignalPipe const&) = delete;
    SignalPipe& operator=(SignalPipe const&) = delete;
    // Leaves the signals ignored, not at their default: the process is about
    // to exit, and a late SIGTERM must not turn a clean exit into a kill.
    ~SignalPipe();

    // The read end, non-blocking: readable when signals are pending.
    int fd() const { return m_read.get(); }
    // Takes every pending signal number off the pipe, oldest first.
    std::vector<int> drain();

private:
    SignalPipe() = default;

    UniqueFd m_read;
    UniqueFd m_write;
    std::vector<int> m_signals;
};

}
