#include "fd_io.h"

#include <cerrno>
#include <unistd.h>

namespace posta {

Result<size_t> read_some(int fd, void* into, size_t size, std::string const& context)
{
    for (;;) {
        ssize_t n = ::read(fd, into, size);
        if (n >= 0)
            return static_cast<size_t>(n);
        if (int code = errno; code != EINTR) // read before the strings are made
            return Error::from_errno_code(code, "read", context);
    }
}

Result<void> read_into(int fd, std::string& buffer, std::string const& context)
{
    size_t have = 0;
    while (have < buffer.size()) {
        auto n = read_some(fd, buffer.data() + have, buffer.size() - have, context);
        if (!n) {
            buffer.resize(have);
            return n.error();
        }
        if (*n == 0)
            break;
        have += *n;
    }
    buffer.resize(have);
    return {};
}

Result<std::string> read_all(int fd, std::string const& context)
{
    std::string text;
    char buffer[65536];
    for (;;) {
        auto n = read_some(fd, buffer, sizeof buffer, context);
        if (!n)
            return n.error();
        if (*n == 0)
            return text;
        text.append(buffer, *n);
    }
}

Result<void> write_all(int fd, std::string_view bytes, std::string const& context)
{
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int code = errno; // before the strings are made
            return Error::from_errno_code(code, "write", context);
        }
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return {};
}

}
