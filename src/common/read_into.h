// read_into: the one loop that reads a small file whole into memory, after
// fstat gave its size (keys.json, a TLS key, an ACME challenge file). Used
// by the worker; owns nothing.
#pragma once

#include "common/result.h"

#include <string>

namespace posta {

// Reads up to buffer.size() bytes of `fd` into `buffer`, retrying EINTR,
// and shrinks it to the bytes read (fewer when the file ended first). On a
// read error `buffer` keeps what came (a caller holding a secret wipes it)
// and the error is read's errno, with `context`.
Result<void> read_into(int fd, std::string& buffer, std::string const& context);

}
