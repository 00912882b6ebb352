#include "listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace posta {

Result<ListenAddress> parse_listen_address(std::string_view text)
{
    ListenAddress out;
    if (text.starts_with("https://")) {
        out.kind = ConnectionKind::Tls;
        text.remove_prefix(8);
    } else if (text.starts_with("http://")) {
        text.remove_prefix(7);
    }
    auto address = parse_socket_address(text);
    if (!address)
        return address.error();
    out.address = address.value();
    return out;
}

Result<Listener> Listener::bind(ListenAddress const& listen, std::chrono::seconds defer)
{
    SocketAddress const& address = listen.address;
    std::string text = format_address(address.get(), address.length);
    UniqueFd fd(::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd)
        return Error::from_errno("socket", text);

    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        return Error::from_errno("setsockopt SO_REUSEADDR", text);
    if (address.storage.ss_family == AF_INET6
        && ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        return Error::from_errno("setsockopt IPV6_V6ONLY", text);
    if (::bind(fd.get(), address.get(), address.length) < 0)
        return Error::from_errno("bind", text);
    if (::listen(fd.get(), SOMAXCONN) < 0)
        return Error::from_errno("listen", text);

    // Best effort: without it we only pay an extra wake-up per connection.
    int seconds = static_cast<int>(defer.count() > 0 ? defer.count() : 1);
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof seconds);

    return adopt(std::move(fd), listen.kind);
}

Result<Listener> Listener::adopt(UniqueFd fd, ConnectionKind kind)
{
    std::string text = "passed fd " + std::to_string(fd.get());
    int listening = 0;
    socklen_t length = sizeof listening;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) < 0)
        return Error::from_errno("getsockopt SO_ACCEPTCONN", text);
    if (!listening)
        return Error::message("listen", "not a listening socket", text);
    SocketAddress bound;
    bound.length = sizeof bound.storage;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound.storage), &bound.length) < 0)
        return Error::from_errno("getsockname", text);
    std::string name = format_address(bound.get(), bound.length);
    return Listener(std::move(fd), kind, kind == ConnectionKind::Tls ? "https://" + name : name);
}

}
