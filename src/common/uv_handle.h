// UvHandle<T>: the owner of one libuv handle (uv_timer_t, uv_poll_t, ...).
// libuv may still touch a handle after uv_close() until its close callback
// runs, so the handle's memory is freed there and never earlier (libuv's
// handle.rst). Destroying the owner closes the handle; that is safe inside
// the handle's own callback.
#pragma once

#include "common/result.h"

#include <uv.h>
#include <utility>

namespace posta {

template<typename T>
class UvHandle {
public:
    UvHandle() = default;
    UvHandle(UvHandle&& other) noexcept
        : m_handle(std::exchange(other.m_handle, nullptr))
    {
    }
    UvHandle& operator=(UvHandle&& other) noexcept
    {
        if (this != &other) {
            close();
            m_handle = std::exchange(other.m_handle, nullptr);
        }
        return *this;
    }
    UvHandle(UvHandle const&) = delete;
    UvHandle& operator=(UvHandle const&) = delete;
    ~UvHandle() { close(); }

    // Takes ownership of a handle allocated with `new` and already initialised.
    static UvHandle adopt(T* handle)
    {
        UvHandle out;
        out.m_handle = handle;
        return out;
    }

    T* get() const { return m_handle; }
    explicit operator bool() const { return m_handle != nullptr; }

    void close()
    {
        if (!m_handle)
            return;
        auto* base = reinterpret_cast<uv_handle_t*>(std::exchange(m_handle, nullptr));
        base->data = nullptr;
        uv_close(base, [](uv_handle_t* h) noexcept { delete reinterpret_cast<T*>(h); });
    }

private:
    T* m_handle = nullptr;
};

// Starts `timer` to fire once at loop time `due_ms` (uv_now's clock), or on
// the next loop turn if that has passed.
inline void start_timer_at(uv_timer_t* timer, uint64_t due_ms, uv_timer_cb callback)
{
    uint64_t now = uv_now(timer->loop);
    uv_timer_start(timer, callback, due_ms > now ? due_ms - now : 0, 0);
}

// A failed libuv call's Error: `rc` is its negative result.
inline Error uv_error(int rc, std::string op, std::string context = {})
{
    return Error { ErrorDomain::Uv, rc, std::move(op), uv_strerror(rc), std::move(context) };
}

inline UvHandle<uv_timer_t> make_timer(uv_loop_t* loop, void* data)
{
    auto* timer = new uv_timer_t {};
    uv_timer_init(loop, timer); // cannot fail on Unix
    timer->data = data;
    return UvHandle<uv_timer_t>::adopt(timer);
}

inline Result<UvHandle<uv_poll_t>> make_poll(uv_loop_t* loop, int fd, void* data)
{
    auto* poll = new uv_poll_t {};
    if (int rc = uv_poll_init(loop, poll, fd); rc < 0) {
        delete poll;
        return uv_error(rc, "uv_poll_init", "fd " + std::to_string(fd));
    }
    poll->data = data;
    return UvHandle<uv_poll_t>::adopt(poll);
}

inline Result<UvHandle<uv_signal_t>> make_signal(uv_loop_t* loop, void* data)
{
    auto* signal = new uv_signal_t {};
    if (int rc = uv_signal_init(loop, signal); rc < 0) {
        delete signal;
        return uv_error(rc, "uv_signal_init");
    }
    signal->data = data;
    return UvHandle<uv_signal_t>::adopt(signal);
}

}
