#include "unix_socket.h"

#include <cstring>
#include <sys/socket.h>

namespace posta {

Result<sockaddr_un> unix_socket_address(std::string const& path)
{
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return Error::message("unix socket", "path too long", path);
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

Result<UniqueFd> connect_unix(std::string const& path)
{
    auto addr = unix_socket_address(path);
    if (!addr)
        return addr.error();
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return Error::from_errno("socket", path);
    if (::connect(fd.get(), reinterpret_cast<sockaddr const*>(&addr.value()), sizeof addr.value()) < 0)
        return Error::from_errno("connect", path);
    return fd;
}

}
