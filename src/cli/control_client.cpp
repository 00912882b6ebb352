#include "control_client.h"

#include "common/unix_socket.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

namespace posta {

Result<std::string> ask_daemon(std::string const& socket_path, std::string_view request,
    std::chrono::milliseconds timeout)
{
    auto connected = connect_unix(socket_path);
    if (!connected)
        return connected.error();
    UniqueFd fd = std::move(connected.value());
    std::string line(request);
    line += '\n';
    if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) < 0)
        return Error::from_errno("send to", socket_path);

    // The answer may carry a credential: every buffer that held it is wiped.
    std::string answer;
    char buf[4096];
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p { fd.get(), POLLIN, 0 };
        int ready = ::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0)));
        if (ready == 0) {
            ::explicit_bzero(answer.data(), answer.size());
            return Error::from_errno_code(ETIMEDOUT, "no answer on", socket_path);
        }
        if (ready < 0 && errno == EINTR)
            continue;
        ssize_t n = ready < 0 ? -1 : ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0) {
            ::explicit_bzero(answer.data(), answer.size());
            return Error::from_errno("recv from", socket_path);
        }
        if (n == 0)
            break;
        answer.append(buf, static_cast<size_t>(n));
        ::explicit_bzero(buf, static_cast<size_t>(n));
    }
    if (answer.empty() || answer.back() != '\n') {
        ::explicit_bzero(answer.data(), answer.size());
        return Error::message("control socket", "the daemon closed it without a whole answer", socket_path);
    }
    answer.pop_back();
    return answer;
}

bool no_daemon(Error const& error)
{
    return error.op == "connect" && (error.is(ErrorDomain::Errno, ENOENT) || error.is(ErrorDomain::Errno, ECONNREFUSED));
}

}
