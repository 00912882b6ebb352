// A private libuv loop for a test that drives asynchronous code (the HTTP
// client, the peer directory), and a port that refuses connections.
#pragma once

#include "common/unique_fd.h"

#include <arpa/inet.h>
#include <chrono>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <uv.h>

namespace posta::test {

// run_until() turns the loop until a condition holds or a deadline passes; a
// 10 ms tick keeps a turn from blocking forever. The destructor runs the loop
// dry and checks that every handle the code under test made was closed.
class TestLoop {
public:
    TestLoop()
    {
        REQUIRE(uv_loop_init(&m_loop) == 0);
        uv_timer_init(&m_loop, &m_tick);
    }
    ~TestLoop()
    {
        uv_close(reinterpret_cast<uv_handle_t*>(&m_tick), nullptr);
        uv_run(&m_loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&m_loop) == 0);
    }
    TestLoop(TestLoop const&) = delete;
    TestLoop& operator=(TestLoop const&) = delete;
    uv_loop_t* get() { return &m_loop; }

    template<typename Predicate>
    bool run_until(Predicate done, std::chrono::milliseconds limit = std::chrono::seconds(5))
    {
        auto deadline = std::chrono::steady_clock::now() + limit;
        uv_timer_start(&m_tick, [](uv_timer_t*) noexcept {}, 10, 10);
        while (!done() && std::chrono::steady_clock::now() < deadline)
            uv_run(&m_loop, UV_RUN_ONCE);
        uv_timer_stop(&m_tick);
        return done();
    }

private:
    uv_loop_t m_loop {};
    uv_timer_t m_tick {};
};

// A TCP port on 127.0.0.1 that is bound but never listens, for as long as
// this lives: a connection to it is refused at once, and no other process
// can take the port meanwhile.
class RefusingPort {
public:
    RefusingPort()
        : m_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0))
    {
        sockaddr_in address {};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(m_fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(m_fd.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
        m_port = ntohs(address.sin_port);
    }
    uint16_t port() const { return m_port; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

private:
    UniqueFd m_fd;
    uint16_t m_port = 0;
};

}
