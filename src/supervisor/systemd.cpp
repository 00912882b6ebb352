#include "systemd.h"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace posta::systemd {

namespace {

// systemd's first passed fd (SD_LISTEN_FDS_START).
constexpr int listen_fds_start = 3;

bool parse_number(char const* text, long& out)
{
    if (!text)
        return false;
    auto end = text + std::strlen(text);
    auto [ptr, ec] = std::from_chars(text, end, out);
    return ec == std::errc() && ptr == end;
}

}

void notify(std::string_view state)
{
    char const* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return;
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    size_t length = std::strlen(path);
    if (length >= sizeof addr.sun_path)
        return;
    std::memcpy(addr.sun_path, path, length);
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0'; // abstract namespace
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return;
    auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
    ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), addr_len);
}

std::vector<ActivatedSocket> take_listen_fds()
{
    std::vector<ActivatedSocket> out;
    char const* names_variable = std::getenv("LISTEN_FDNAMES");
    std::string names = names_variable ? names_variable : "";
    long pid = 0;
    long count = 0;
    bool ours = parse_number(std::getenv("LISTEN_PID"), pid) && pid == ::getpid()
        && parse_number(std::getenv("LISTEN_FDS"), count) && count > 0 && count < 1024;
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!ours)
        return out;
    // LISTEN_FDNAMES: one name per fd, separated by ':'.
    size_t name_at = 0;
    for (int fd = listen_fds_start; fd < listen_fds_start + count; ++fd) {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        std::string name;
        if (name_at <= names.size()) {
            size_t end = std::min(names.find(':', name_at), names.size());
            name = names.substr(name_at, end - name_at);
            name_at = end + 1;
        }
        out.push_back(ActivatedSocket { UniqueFd(fd), std::move(name) });
    }
    return out;
}

}
