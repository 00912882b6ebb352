#include "read_into.h"

#include <cerrno>
#include <unistd.h>

namespace posta {

Result<void> read_into(int fd, std::string& buffer, std::string const& context)
{
    size_t have = 0;
    while (have < buffer.size()) {
        ssize_t n = ::read(fd, buffer.data() + have, buffer.size() - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int code = errno;
            buffer.resize(have);
            return Error::from_errno_code(code, "read", context);
        }
        if (n == 0)
            break;
        have += static_cast<size_t>(n);
    }
    buffer.resize(have);
    return {};
}

}
