#include "support/test_support.h"

#include "http/http_message.h"

#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace posta::test {

TempDir::TempDir()
{
    char const* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/posta-worker-test-XXXXXX";
    if (!::mkdtemp(pattern.data()))
        throw std::runtime_error("mkdtemp failed");
    m_path = pattern;
}

TempDir::~TempDir()
{
    ::nftw(m_path.c_str(), [](char const* path, struct stat const*, int, FTW*) { return ::remove(path); }, 16,
        FTW_DEPTH | FTW_PHYS);
}

std::string read_file(std::string const& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        return {};
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0)
        out.append(buf, static_cast<size_t>(n));
    return out;
}

void write_file(std::string const& path, std::string_view text, int mode)
{
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd || ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        throw std::runtime_error("cannot write " + path);
    ::fchmod(fd.get(), static_cast<mode_t>(mode));
}

int file_mode(std::string const& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0)
        return -1;
    return static_cast<int>(st.st_mode & 07777);
}

TcpPair make_tcp_pair()
{
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (!listener || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0
        || ::listen(listener.get(), 1) < 0 || ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) < 0)
        throw std::runtime_error("listen on 127.0.0.1 failed");
    TcpPair pair;
    pair.client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!pair.client || ::connect(pair.client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        throw std::runtime_error("connect to 127.0.0.1 failed");
    pair.client_address_len = sizeof pair.client_address;
    pair.server.reset(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&pair.client_address),
        &pair.client_address_len, SOCK_CLOEXEC));
    if (!pair.server)
        throw std::runtime_error("accept failed");
    return pair;
}

std::optional<std::string> HttpResponse::header(std::string_view name) const
{
    for (auto const& [key, value] : headers) {
        if (iequals(key, name))
            return value;
    }
    return std::nullopt;
}

void HttpClient::send(std::string_view bytes)
{
    while (!bytes.empty()) {
        ssize_t n = ::send(m_fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw std::runtime_error("send failed");
        bytes.remove_prefix(static_cast<size_t>(n));
    }
}

bool HttpClient::fill(Clock::time_point deadline)
{
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0)
        return false;
    pollfd p { m_fd.get(), POLLIN, 0 };
    if (::poll(&p, 1, static_cast<int>(left)) <= 0)
        return false;
    char buf[16384];
    ssize_t n = ::recv(m_fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    m_buffer.append(buf, static_cast<size_t>(n));
    return true;
}

std::optional<HttpResponse> take_response(std::string& buffer, bool head_request)
{
    size_t end = buffer.find("\r\n\r\n");
    if (end == std::string::npos)
        return std::nullopt;
    std::string head = buffer.substr(0, end + 2);

    HttpResponse response;
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0 || status_line.size() < 12)
        throw std::runtime_error("bad status line: " + status_line);
    response.status = std::stoi(status_line.substr(9, 3));
    size_t pos = line_end + 2;
    while (pos < head.size()) {
        size_t next = head.find("\r\n", pos);
        std::string line = head.substr(pos, next - pos);
        pos = next + 2;
        size_t colon = line.find(':');
        if (colon == std::string::npos)
            throw std::runtime_error("bad header line: " + line);
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
            value.erase(0, 1);
        response.headers.emplace_back(line.substr(0, colon), value);
    }
    size_t length = 0;
    bool no_body = head_request || response.status < 200 || response.status == 204 || response.status == 304;
    if (!no_body) {
        auto length_text = response.header("Content-Length");
        if (!length_text)
            throw std::runtime_error("response without Content-Length");
        std::from_chars(length_text->data(), length_text->data() + length_text->size(), length);
    }
    if (buffer.size() < end + 4 + length)
        return std::nullopt;
    response.body = buffer.substr(end + 4, length);
    buffer.erase(0, end + 4 + length);
    return response;
}

std::optional<HttpResponse> HttpClient::read_response(bool head_request, Clock::duration timeout)
{
    auto deadline = Clock::now() + timeout;
    while (true) {
        if (auto response = take_response(m_buffer, head_request))
            return response;
        if (!fill(deadline))
            return std::nullopt;
    }
}

HttpResponse HttpClient::exchange(std::string_view request, bool head_request)
{
    send(request);
    auto response = read_response(head_request);
    if (!response)
        throw std::runtime_error("no response (EOF, reset or deadline) to: " + std::string(request.substr(0, 80)));
    return std::move(*response);
}

bool HttpClient::wait_closed(Clock::duration timeout)
{
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd p { m_fd.get(), POLLIN, 0 };
        if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 0))) <= 0)
            return false;
        char buf[16384];
        ssize_t n = ::recv(m_fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
        if (n > 0)
            m_buffer.append(buf, static_cast<size_t>(n));
    }
    return false;
}

}
