// The control socket's server (supervisor/control_server.h) on a real loop
// and a real Unix socket: one request line, one answer line, the asker's
// credentials from the kernel, answers that come later, clients that leave,
// and the path it claims (a stale socket replaced, anything live or not a
// socket left alone, its own socket 0600 and removed at the end).
#include "supervisor/control_server.h"

#include "common/unix_socket.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

using namespace posta;

namespace {

// A loop and a fresh folder for the socket; the loop runs once more at the
// end so that closed handles are freed.
struct Fixture {
    uv_loop_t loop {};
    std::string dir;
    std::string path;

    Fixture()
    {
        REQUIRE(uv_loop_init(&loop) == 0);
        char pattern[] = "/tmp/posta-control-test-XXXXXX";
        REQUIRE(::mkdtemp(pattern));
        dir = pattern;
        path = dir + "/control.sock";
    }
    ~Fixture()
    {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        std::filesystem::remove_all(dir);
    }
};

using Clock = std::chrono::steady_clock;

// Runs the loop without blocking until `done` or five seconds pass.
template<typename Done>
bool run_until(uv_loop_t* loop, Done done)
{
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (!done()) {
        if (Clock::now() > deadline)
            return false;
        uv_run(loop, UV_RUN_NOWAIT);
        ::usleep(1000); // a poll interval, not a synchronisation: the condition decides
    }
    return true;
}

UniqueFd ask(std::string const& path, std::string const& line)
{
    auto fd = connect_unix(path);
    REQUIRE_MESSAGE(fd, (fd ? "" : fd.error().text()));
    std::string request = line + "\n";
    REQUIRE(::send(fd->get(), request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    return std::move(fd.value());
}

// Everything the server sends on `fd` until it closes, the loop running.
std::string read_answer(uv_loop_t* loop, int fd)
{
    std::string answer;
    bool closed = false;
    bool ended = run_until(loop, [&] {
        char buf[512];
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            answer.append(buf, static_cast<size_t>(n));
        closed = n == 0;
        return closed;
    });
    REQUIRE_MESSAGE(ended, "the server did not close the connection");
    return answer;
}

}

TEST_CASE("a request line gets one answer line, and the provider sees the asker's uid and pid")
{
    Fixture f;
    std::string seen;
    ControlPeer peer;
    auto server = ControlServer::create(&f.loop, f.path,
        [&](std::string_view request, ControlPeer const& from, ControlServer::Reply reply) {
            seen = request;
            peer = from;
            reply("answer to " + std::string(request));
        });
    REQUIRE(server);
    UniqueFd client = ask(f.path, "status");
    CHECK(read_answer(&f.loop, client.get()) == "answer to status\n");
    CHECK(seen == "status");
    CHECK(peer.uid == ::getuid());
    CHECK(peer.pid == ::getpid());
}

TEST_CASE("an answer may come later, after other loop turns")
{
    Fixture f;
    std::optional<ControlServer::Reply> pending;
    auto server = ControlServer::create(&f.loop, f.path,
        [&](std::string_view, ControlPeer const&, ControlServer::Reply reply) { pending = std::move(reply); });
    REQUIRE(server);
    UniqueFd client = ask(f.path, "token arne");
    REQUIRE(run_until(&f.loop, [&] { return pending.has_value(); }));
    for (int i = 0; i < 5; ++i)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    (*pending)("late");
    (*pending)("ignored: the first answer counts");
    CHECK(read_answer(&f.loop, client.get()) == "late\n");
}

TEST_CASE("a reply after the client left, or after the server is gone, is dropped safely")
{
    Fixture f;
    std::optional<ControlServer::Reply> pending;
    auto server = ControlServer::create(&f.loop, f.path,
        [&](std::string_view, ControlPeer const&, ControlServer::Reply reply) { pending = std::move(reply); });
    REQUIRE(server);
    UniqueFd client = ask(f.path, "status");
    REQUIRE(run_until(&f.loop, [&] { return pending.has_value(); }));
    client.reset();
    for (int i = 0; i < 5; ++i)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    (*pending)("nobody reads this");

    UniqueFd second = ask(f.path, "status");
    pending.reset();
    REQUIRE(run_until(&f.loop, [&] { return pending.has_value(); }));
    server.value().reset();
    (*pending)("the server is gone");
    CHECK(read_answer(&f.loop, second.get()).empty());
}

TEST_CASE("a line longer than any request closes the connection unanswered")
{
    Fixture f;
    bool asked = false;
    auto server = ControlServer::create(&f.loop, f.path,
        [&](std::string_view, ControlPeer const&, ControlServer::Reply reply) {
            asked = true;
            reply("no");
        });
    REQUIRE(server);
    UniqueFd client = ask(f.path, std::string(4096, 'x'));
    CHECK(read_answer(&f.loop, client.get()).empty());
    CHECK_FALSE(asked);
}

TEST_CASE("its socket is made 0600 and removed when the server goes")
{
    Fixture f;
    auto server = ControlServer::create(&f.loop, f.path, [](auto, auto const&, auto reply) { reply("x"); });
    REQUIRE(server);
    struct stat st {};
    REQUIRE(::lstat(f.path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    server.value().reset();
    CHECK_FALSE(std::filesystem::exists(f.path));
}

TEST_CASE("a stale socket nobody listens on is replaced")
{
    Fixture f;
    {
        auto addr = unix_socket_address(f.path);
        REQUIRE(addr);
        UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(::bind(stale.get(), reinterpret_cast<sockaddr const*>(&addr.value()), sizeof addr.value()) == 0);
    } // closed without unlinking, as after a kill -9
    auto server = ControlServer::create(&f.loop, f.path, [](auto, auto const&, auto reply) { reply("fresh"); });
    REQUIRE_MESSAGE(server, (server ? "" : server.error().text()));
    UniqueFd client = ask(f.path, "status");
    CHECK(read_answer(&f.loop, client.get()) == "fresh\n");
}

TEST_CASE("a live socket of another server, or a file that is not a socket, is left alone and named")
{
    Fixture f;
    auto first = ControlServer::create(&f.loop, f.path, [](auto, auto const&, auto reply) { reply("first"); });
    REQUIRE(first);
    auto second = ControlServer::create(&f.loop, f.path, [](auto, auto const&, auto reply) { reply("second"); });
    REQUIRE_FALSE(second);
    CHECK(second.error().text().find("another posta-server is listening there") != std::string::npos);
    UniqueFd client = ask(f.path, "status");
    CHECK(read_answer(&f.loop, client.get()) == "first\n");

    std::string file = f.dir + "/not-a-socket";
    std::ofstream(file) << "operator's notes\n";
    auto third = ControlServer::create(&f.loop, file, [](auto, auto const&, auto reply) { reply("third"); });
    REQUIRE_FALSE(third);
    CHECK(third.error().text().find("is not a socket") != std::string::npos);
    std::ifstream kept(file);
    std::string line;
    std::getline(kept, line);
    CHECK(line == "operator's notes");
}
