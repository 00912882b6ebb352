// OpenSSL's error queue as text for one operator or debug line, used by the
// worker's TLS code (the transport and the certificate loader).
#pragma once

#include <openssl/err.h>
#include <string>

namespace posta {

// The oldest error OpenSSL queued in this thread, or `none` when there is
// none; clears the queue, so that the next failure is told on its own.
inline std::string take_openssl_error(char const* none = "no OpenSSL error")
{
    unsigned long code = ERR_get_error();
    std::string text = none;
    if (code != 0) {
        char buffer[256];
        ERR_error_string_n(code, buffer, sizeof buffer);
        text = buffer;
    }
    ERR_clear_error();
    return text;
}

}
