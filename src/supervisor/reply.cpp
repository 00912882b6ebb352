#include "reply.h"

#include <string>
#include <sys/socket.h>

namespace posta {

namespace {

uint64_t reply_counts[std::size(all_replies)] {};

std::string const& wire(Reply reply)
{
    auto build = [](int status, char const* reason, char const* code, char const* message, bool retry) {
        std::string body = std::string("{\"error\":\"") + code + "\",\"message\":\"" + message + "\"}";
        std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
        out += "Content-Type: application/json\r\n";
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
        if (retry)
            out += "Retry-After: 1\r\n";
        out += "Connection: close\r\n\r\n";
        return out + body;
    };
    static std::string const bad_request = build(400, "Bad Request", "bad_request",
        "the request head is malformed or lacks a Host header", false);
    static std::string const not_found = build(404, "Not Found", "unknown_host",
        "no identity is served at this host", false);
    static std::string const timeout = build(408, "Request Timeout", "request_timeout",
        "the request head did not arrive in time", false);
    static std::string const too_large = build(431, "Request Header Fields Too Large", "head_too_large",
        "the request head is larger than this server accepts", false);
    static std::string const unavailable = build(503, "Service Unavailable", "identity_unavailable",
        "this identity is starting or restarting; retry shortly", true);
    // A fatal alert (level 2) in a TLS 1.2-versioned plaintext record,
    // which every TLS 1.2 and 1.3 client reads before a ServerHello.
    auto alert = [](unsigned char description) {
        return std::string("\x15\x03\x03\x00\x02\x02", 6) + static_cast<char>(description);
    };
    static std::string const unrecognized_name = alert(112);
    static std::string const internal_error = alert(80);
    switch (reply) {
    case Reply::TlsUnrecognizedName:
        return unrecognized_name;
    case Reply::TlsInternalError:
        return internal_error;
    case Reply::BadRequest:
        return bad_request;
    case Reply::NotFound:
        return not_found;
    case Reply::RequestTimeout:
        return timeout;
    case Reply::HeadTooLarge:
        return too_large;
    case Reply::Unavailable:
        break;
    }
    return unavailable;
}

}

uint64_t reply_count(Reply reply) { return reply_counts[static_cast<size_t>(reply)]; }

void reply_and_close(UniqueFd connection, Reply reply)
{
    ++reply_counts[static_cast<size_t>(reply)];
    int fd = connection.get();
    char sink[4096];
    // Bounded: a client streaming a body at us does not keep us here.
    for (int i = 0; i < 16; ++i) {
        ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n <= 0)
            break;
    }
    std::string const& bytes = wire(reply);
    // The answer is a few hundred bytes and the socket is fresh: it fits the
    // send buffer. If it does not, the client gets a closed connection.
    ssize_t ignored = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)ignored;
    ::shutdown(fd, SHUT_WR);
}

}
