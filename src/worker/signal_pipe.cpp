// Why not uv_signal: libuv serialises its handlers with a process-global
// pipe that a pthread_atfork handler recreates in a forked child. The
// supervisor then closes every fd but the channel (a worker holds nothing of
// anyone else), which closes that pipe too, and uv_signal_start() aborts.
// Nor a signalfd: tests/e2e/test_isolation.py reads any signalfd in a worker
// as the supervisor's, leaked. A self-pipe has neither problem.
#include "signal_pipe.h"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <unistd.h>

namespace posta {

namespace {

// The write end, for the handler. -1 when no SignalPipe exists.
volatile sig_atomic_t g_write_fd = -1;

// Async-signal-safe: one write(2) of one byte; a full pipe drops the byte,
// but then signals are pending anyway.
void on_signal(int signum)
{
    int saved = errno;
    auto byte = static_cast<unsigned char>(signum);
    ssize_t ignored = ::write(g_write_fd, &byte, 1);
    (void)ignored;
    errno = saved;
}

}

Result<SignalPipe> SignalPipe::open(std::initializer_list<int> signals)
{
    if (g_write_fd != -1)
        return Error::message("SignalPipe", "one already exists in this process");
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return Error::from_errno("pipe2", "signal pipe");
    SignalPipe out;
    out.m_read.reset(fds[0]);
    out.m_write.reset(fds[1]);
    g_write_fd = fds[1];

    struct sigaction action {};
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    sigfillset(&action.sa_mask);
    for (int signum : signals) {
        if (::sigaction(signum, &action, nullptr) < 0)
            return Error::from_errno("sigaction", sigabbrev_np(signum));
        out.m_signals.push_back(signum);
    }
    return out;
}

SignalPipe::SignalPipe(SignalPipe&& other) noexcept
    : m_read(std::move(other.m_read))
    , m_write(std::move(other.m_write))
    , m_signals(std::move(other.m_signals))
{
    other.m_signals.clear();
}

SignalPipe::~SignalPipe()
{
    if (!m_write)
        return;
    for (int signum : m_signals)
        ::signal(signum, SIG_IGN);
    g_write_fd = -1;
}

std::vector<int> SignalPipe::drain()
{
    std::vector<int> out;
    unsigned char buf[64];
    ssize_t n;
    while ((n = ::read(m_read.get(), buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; ++i)
            out.push_back(buf[i]);
    }
    return out;
}

}
