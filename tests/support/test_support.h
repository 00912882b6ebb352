// Helpers for the worker's tests: temporary folders, connected TCP pairs on
// 127.0.0.1, and a small blocking HTTP/1.1 client whose every wait has a
// deadline (no sleeps).
#pragma once

#include "common/unique_fd.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <utility>
#include <vector>

namespace posta::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A fresh folder under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(TempDir const&) = delete;
    TempDir& operator=(TempDir const&) = delete;
    std::string const& path() const { return m_path; }

private:
    std::string m_path;
};

std::string read_file(std::string const& path);
void write_file(std::string const& path, std::string_view text, int mode);
int file_mode(std::string const& path); // st_mode & 07777, or -1

// Both ends of one TCP connection over 127.0.0.1, blocking, close-on-exec.
struct TcpPair {
    UniqueFd client;
    UniqueFd server;
    sockaddr_storage client_address {};
    socklen_t client_address_len = 0;
};
TcpPair make_tcp_pair();

struct HttpResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    // The first value of the header (case-insensitive), or nullopt.
    std::optional<std::string> header(std::string_view name) const;
};

// Takes one complete response off the front of `buffer` (see
// HttpClient::read_response); nullopt, with `buffer` untouched, when it does
// not hold a whole one yet. A malformed response is a test failure (throws).
std::optional<HttpResponse> take_response(std::string& buffer, bool head_request = false);

class HttpClient {
public:
    explicit HttpClient(UniqueFd fd)
        : m_fd(std::move(fd))
    {
    }

    int fd() const { return m_fd.get(); }
    void send(std::string_view bytes);
    // Reads one response: the head, then Content-Length bytes of body unless
    // `head_request` or the status has no body. nullopt on EOF, a reset or
    // the deadline.
    std::optional<HttpResponse> read_response(bool head_request = false, Clock::duration timeout = 5s);
    // send(), then read_response(); no response is a test failure (throws).
    HttpResponse exchange(std::string_view request, bool head_request = false);
    // True when the server closes the connection (EOF or reset) before the
    // deadline; bytes that arrive first are collected in extra().
    bool wait_closed(Clock::duration timeout = 5s);
    std::string const& extra() const { return m_buffer; }

private:
    // Reads more into m_buffer; false on EOF, error or deadline.
    bool fill(Clock::time_point deadline);

    UniqueFd m_fd;
    std::string m_buffer;
};

}
