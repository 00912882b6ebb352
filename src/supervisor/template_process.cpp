#include "template_process.h"

#include "supervisor/child_signal.h"

#include "ipc/channel.h"
#include "common/log.h"
#include "ipc/worker_start.h"

#include <cerrno>
#include <csignal>
#include <sys/wait.h>
#include <utility>

namespace posta {

namespace {

// The template answers a fork in well under a millisecond; this bounds a
// template that is stopped or wedged, which is then replaced.
constexpr uint64_t answer_timeout_ms = 5'000;
// Requests on the wire at once: the channel's buffer holds them with room
// to spare, so a send never finds it full.
constexpr size_t max_in_flight = 16;

}

TemplateProcess::TemplateProcess(uv_loop_t* loop, std::string exe, int stderr_fd)
    : m_loop(loop)
    , m_exe(std::move(exe))
    , m_stderr_fd(stderr_fd)
{
}

TemplateProcess::~TemplateProcess() { close(); }

void TemplateProcess::close()
{
    m_poll.close();
    m_timer.close();
    m_channel.reset();
    auto unanswered = std::exchange(m_sent, {});
    for (auto& request : std::exchange(m_unsent, {}))
        unanswered.push_back(std::move(request));
    for (auto& request : unanswered)
        request.answer(Error::message("worker template", "closed before it answered"));
}

Result<void> TemplateProcess::start()
{
    auto channel = make_channel();
    if (!channel)
        return channel.error();
    auto [ours, theirs] = std::move(channel.value());
    auto poll = make_poll(m_loop, ours.get(), this);
    if (!poll)
        return poll.error();
    auto spawned = spawn_template(m_exe.c_str(), theirs.get(), m_stderr_fd);
    if (!spawned)
        return spawned.error();
    m_pid = spawned.value();
    m_channel = std::move(ours);
    m_poll = std::move(poll.value());
    m_timer = make_timer(m_loop, this);
    uv_poll_start(m_poll.get(), UV_READABLE, [](uv_poll_t* handle, int, int) noexcept {
        if (auto* self = static_cast<TemplateProcess*>(handle->data))
            self->collect_answers();
    });
    log::debug("worker template %d started", m_pid);
    return {};
}

void TemplateProcess::fork_worker(std::string slug, UniqueFd worker_channel, Answer answer)
{
    if (!m_channel) {
        if (auto started = start(); !started) {
            answer(started.error());
            return;
        }
    }
    m_unsent.push_back({ std::move(slug), std::move(worker_channel), std::move(answer) });
    send_requests();
}

void TemplateProcess::send_requests()
{
    while (!m_unsent.empty() && m_sent.size() < max_in_flight) {
        Request& request = m_unsent.front();
        if (auto sent = send_fork(m_channel.get(), request.worker_channel.get(), request.slug); !sent) {
            abandon(sent.error());
            return;
        }
        request.worker_channel.reset(); // the template has its copy
        m_sent.push_back(std::move(request));
        m_unsent.pop_front();
    }
    if (!m_sent.empty() && !uv_is_active(reinterpret_cast<uv_handle_t*>(m_timer.get())))
        uv_timer_start(m_timer.get(), [](uv_timer_t* timer) noexcept {
            if (auto* self = static_cast<TemplateProcess*>(timer->data))
                self->on_timeout();
        }, answer_timeout_ms, 0);
}

void TemplateProcess::collect_answers()
{
    while (m_channel) {
        auto message = receive_message(m_channel.get());
        if (!message) {
            abandon(message.error());
            return;
        }
        if (!message.value())
            return;
        if (message.value()->type == MessageType::Closed) {
            abandon(Error::message("worker template", "exited"));
            return;
        }
        if (message.value()->type != MessageType::Forked || m_sent.empty()) {
            abandon(Error::message("worker template", "sent an unexpected message"));
            return;
        }
        Request request = std::move(m_sent.front());
        m_sent.pop_front();
        uv_timer_stop(m_timer.get());
        pid_t pid = static_cast<pid_t>(message.value()->count);
        if (pid > 0)
            request.answer(pid);
        else
            request.answer(Error::message("worker template", "cannot fork", message.value()->prefix));
        if (!m_channel)
            return; // an answer closed us
        send_requests();
    }
}

void TemplateProcess::on_timeout()
{
    abandon(Error::message("worker template", "did not answer a fork within 5 s"));
}

void TemplateProcess::abandon(Error const& why)
{
    log::error("worker template %d: %s; killing it, the next worker start begins a new one", m_pid,
        why.text().c_str());
    // Reaped here (SIGKILL is prompt), so that its pid cannot be mistaken
    // for the next template's.
    pid_t pid = std::exchange(m_pid, -1);
    if (pid > 0) {
        signal_child(pid, SIGKILL);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
    }
    close();
}

bool TemplateProcess::on_reaped(pid_t pid)
{
    if (pid <= 0 || pid != m_pid)
        return false;
    m_pid = -1;
    if (m_channel) {
        log::warn("worker template %d exited; the next worker start begins a new one", pid);
        close();
    }
    return true;
}

}
