// session-driver N: one worker HttpSession serving the identity document
// over a real 127.0.0.1 TCP connection, N keep-alive GETs with the bytes of
// bench scenario 1, for callgrind (bench/README.md, "Where the time goes").
// The client is a forked child that sends one request at a time and reads
// each answer whole. Instructions per request: the difference of two runs
// (say N = 2100 and N = 100) divided by their difference in N, which takes
// out start-up and the key's creation.
#include "common/unique_fd.h"
#include "config/manifest.h"
#include "http/http_session.h"
#include "http/router.h"
#include "worker/identity_document.h"
#include "worker/keys.h"

#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace posta;

namespace {

[[noreturn]] void run_client(uint16_t port, int requests)
{
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address {};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        _exit(2);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static char const request[] = "GET /.well-known/posta HTTP/1.1\r\nHost: arne.local\r\n\r\n";
    char buffer[8192];
    for (int i = 0; i < requests; ++i) {
        if (::write(fd, request, sizeof request - 1) != static_cast<ssize_t>(sizeof request - 1))
            _exit(3);
        size_t have = 0;
        for (;;) {
            ssize_t got = ::read(fd, buffer + have, sizeof buffer - have);
            if (got <= 0)
                _exit(4);
            have += static_cast<size_t>(got);
            auto* end = static_cast<char*>(::memmem(buffer, have, "\r\n\r\n", 4));
            if (!end)
                continue;
            auto* length = static_cast<char*>(::memmem(buffer, static_cast<size_t>(end - buffer), "Content-Length: ", 16));
            size_t whole = static_cast<size_t>(end + 4 - buffer) + (length ? std::strtoul(length + 16, nullptr, 10) : 0);
            if (have >= whole)
                break;
        }
        if (i == 0 && std::strncmp(buffer, "HTTP/1.1 200 ", 13) != 0)
            _exit(5);
    }
    ::close(fd);
    _exit(0);
}

}

int main(int argc, char** argv)
{
    int requests = argc > 1 ? std::atoi(argv[1]) : 2000;
    char dir[] = "/tmp/session-driver-XXXXXX";
    if (!::mkdtemp(dir) || sodium_init() < 0)
        return 1;
    auto keys = Keys::load_or_create(dir);
    if (!keys) {
        std::fprintf(stderr, "session-driver: %s\n", keys.error().text().c_str());
        return 1;
    }
    IdentityEntry identity { "arne", "http://arne.local", "Arne", "arne.local", 1 };
    Router router;
    add_identity_document_route(router, identity, keys.value());

    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener, 1) != 0
        || ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0)
        return 1;
    pid_t client = ::fork();
    if (client == 0)
        run_client(ntohs(address.sin_port), requests);
    int fd = ::accept(listener, nullptr, nullptr);

    uv_loop_t loop;
    uv_loop_init(&loop);
    SessionContext context;
    context.loop = &loop;
    context.router = &router;
    context.host_key = identity.host_key;
    if (!HttpSession::create(context, UniqueFd(fd), "127.0.0.1:1", "127.0.0.1", {}))
        return 1;
    uv_run(&loop, UV_RUN_DEFAULT);
    int status = 0;
    ::waitpid(client, &status, 0);
    unlink((std::string(dir) + "/keys.json").c_str());
    rmdir(dir);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "session-driver: the client failed (status %d)\n", status);
        return 1;
    }
    return 0;
}
