// Listener: one listening TCP socket of the supervisor, either bound from a
// --listen address or adopted from systemd socket activation, and whether
// its clients speak plain HTTP or TLS. Created non-blocking and
// close-on-exec, with TCP_DEFER_ACCEPT so that a connection reaches accept()
// only once its first bytes are there.
#pragma once

#include "common/address.h"
#include "ipc/channel.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"

#include <chrono>
#include <string>

namespace posta {

// A --listen value: `ADDR:PORT` or `http://ADDR:PORT` is plain HTTP,
// `https://ADDR:PORT` is TLS.
struct ListenAddress {
    ConnectionKind kind = ConnectionKind::Plain;
    SocketAddress address;
};
Result<ListenAddress> parse_listen_address(std::string_view text);

// The FileDescriptorName= of a socket unit that passes a TLS listener; any
// other name is a plain one.
inline constexpr std::string_view tls_socket_name = "https";

class Listener {
public:
    // Binds and listens on `address`. `defer` is how long the kernel may hold
    // a connection that has sent nothing yet.
    static Result<Listener> bind(ListenAddress const& address, std::chrono::seconds defer);

    // Takes a listening socket passed by systemd; fails if it is not one.
    static Result<Listener> adopt(UniqueFd fd, ConnectionKind kind);

    int fd() const { return m_fd.get(); }
    ConnectionKind kind() const { return m_kind; }
    // The bound address, with the real port when 0 was asked for, after
    // "https://" on a TLS listener.
    std::string const& name() const { return m_name; }

private:
    Listener(UniqueFd fd, ConnectionKind kind, std::string name)
        : m_fd(std::move(fd))
        , m_kind(kind)
        , m_name(std::move(name))
    {
    }

    UniqueFd m_fd;
    ConnectionKind m_kind;
    std::string m_name;
};

}
