// listen_on: the listening handle of a small server run on a libuv loop
// (the supervisor's control socket and metrics endpoint). Owns nothing
// itself: the handle it makes is the caller's UvHandle.
#pragma once

#include "common/callback_guard.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"

#include <string>
#include <type_traits>
#include <uv.h>

namespace posta {

// Opens `fd`, a bound socket, in a new Handle (uv_pipe_t or uv_tcp_t) of
// `loop` and listens on it; the handle takes the fd only on success. Each
// connection calls `server->on_connection()` inside guard_callback with
// Server::role; once the UvHandle closes (its data nulled) none does.
template<typename Server, typename Handle>
Result<UvHandle<Handle>> listen_on(uv_loop_t* loop, UniqueFd& fd, int backlog, Server* server, std::string const& context)
{
    static_assert(std::is_same_v<Handle, uv_pipe_t> || std::is_same_v<Handle, uv_tcp_t>);
    auto* handle = new Handle {};
    if constexpr (std::is_same_v<Handle, uv_pipe_t>)
        uv_pipe_init(loop, handle, 0);
    else
        uv_tcp_init(loop, handle);
    auto owned = UvHandle<Handle>::adopt(handle);
    handle->data = server;
    int rc = 0;
    if constexpr (std::is_same_v<Handle, uv_pipe_t>)
        rc = uv_pipe_open(handle, fd.get());
    else
        rc = uv_tcp_open(handle, fd.get());
    if (rc < 0)
        return uv_error(rc, "listen", context);
    fd.release();
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(handle), backlog, [](uv_stream_t* listener, int status) noexcept {
        if (status == 0 && listener->data)
            guard_callback(Server::role, [&] { static_cast<Server*>(listener->data)->on_connection(); });
    });
    if (rc < 0)
        return uv_error(rc, "listen", context);
    return owned;
}

}
