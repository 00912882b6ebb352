// Listener: one listening TCP socket of the supervisor, either bound from a
// --listen address or adopted from systemd socket activation. Created
// non-blocking and close-on-exec, with TCP_DEFER_ACCEPT so that a connection
// reaches accept() only once its first bytes are there.
#pragma once

#include "common/address.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"

#include <chrono>
#include <string>

namespace posta {

class Listener {
public:
    // Binds and listens on `address`. `defer` is how long the kernel may hold
    // a connection that has sent nothing yet.
    static Result<Listener> bind(SocketAddress const& address, std::chrono::seconds defer);

    // Takes a listening socket passed by systemd; fails if it is not one.
    static Result<Listener> adopt(UniqueFd fd);

    int fd() const { return m_fd.get(); }
    // The bound address, with the real port when 0 was asked for.
    std::string const& name() const { return m_name; }

private:
    Listener(UniqueFd fd, std::string name)
        : m_fd(std::move(fd))
        , m_name(std::move(name))
    {
    }

    UniqueFd m_fd;
    std::string m_name;
};

}
