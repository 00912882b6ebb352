// The loops that read and write a file descriptor whole, retrying EINTR:
// small files read into memory after fstat gave their size (keys.json, a
// TLS key, an ACME challenge file), files and pipes read to their end, and
// writes that must all land. Blocking fds only; owns nothing.
#pragma once

#include "common/result.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace posta {

// Reads up to buffer.size() bytes of `fd` into `buffer` and shrinks it to
// the bytes read (fewer when the file ended first). On a read error `buffer`
// keeps what came (a caller holding a secret wipes it) and the error is
// read's errno, with `context`.
Result<void> read_into(int fd, std::string& buffer, std::string const& context);

// One read(2) of at most `size` bytes; 0 at the end of the file.
Result<size_t> read_some(int fd, void* into, size_t size, std::string const& context);

// Reads `fd` to its end.
Result<std::string> read_all(int fd, std::string const& context);

// Writes all of `bytes`, however many write(2)s it takes.
Result<void> write_all(int fd, std::string_view bytes, std::string const& context);

}
