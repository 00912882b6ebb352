// One loop, one HttpSession on a real TCP pair over 127.0.0.1, and the
// client's end, for tests that drive the loop themselves. The loop watches
// the client socket too, so uv_run(UV_RUN_ONCE) returns whenever either side
// has news; a deadline timer bounds every wait. A test adds its routes to
// `router` (and sets `context` limits) before start().
#pragma once

#include "support/test_support.h"
#include "http/http_session.h"
#include "http/router.h"

#include <cerrno>
#include <doctest/doctest.h>
#include <functional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <uv.h>

namespace posta::test {

class SessionHarness {
public:
    SessionHarness()
    {
        REQUIRE(uv_loop_init(&m_loop) == 0);
        context.loop = &m_loop;
        context.router = &router;
        context.host_key = "arne.test";
        context.on_closed = [this](HttpSession&) { ++closed; };
        uv_timer_init(&m_loop, &m_deadline); // cannot fail
        m_deadline.data = this;
    }
    SessionHarness(SessionHarness const&) = delete;
    SessionHarness& operator=(SessionHarness const&) = delete;

    // Aborts the session if it is still open and runs the loop dry.
    ~SessionHarness()
    {
        if (m_session && closed == 0)
            m_session->abort("test over");
        if (m_session)
            uv_close(reinterpret_cast<uv_handle_t*>(&m_client_poll), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&m_deadline), nullptr);
        uv_run(&m_loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&m_loop) == 0);
    }

    // Creates the session on a fresh connection, with `prefix` as the bytes
    // the supervisor read off it; `server_sndbuf` > 0 shrinks the kernel
    // send buffer of the session's end.
    void start(std::string prefix = {}, int server_sndbuf = 0)
    {
        TcpPair pair = make_tcp_pair();
        if (server_sndbuf > 0)
            REQUIRE(::setsockopt(pair.server.get(), SOL_SOCKET, SO_SNDBUF, &server_sndbuf, sizeof server_sndbuf) == 0);
        m_client = std::move(pair.client);
        auto session = HttpSession::create(context, std::move(pair.server), "127.0.0.1:1", "127.0.0.1", std::move(prefix));
        REQUIRE(session.ok());
        m_session = session.value();
        REQUIRE(uv_poll_init(&m_loop, &m_client_poll, m_client.get()) == 0);
        m_client_poll.data = this;
        resume_reading();
    }

    HttpSession& session() { return *m_session; }

    void send(std::string_view bytes)
    {
        REQUIRE(::send(m_client.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
    }
    void close_client()
    {
        m_client.reset();
        uv_poll_stop(&m_client_poll);
    }
    void pause_reading() { uv_poll_stop(&m_client_poll); }
    void resume_reading()
    {
        uv_poll_start(&m_client_poll, UV_READABLE, [](uv_poll_t* poll, int, int) noexcept {
            static_cast<SessionHarness*>(poll->data)->read_client();
        });
    }

    // Runs the loop until `done` (asked once per turn) holds or the deadline.
    bool pump_until(std::function<bool()> const& done, uint64_t timeout_ms = 5000)
    {
        m_timed_out = false;
        uv_timer_start(&m_deadline, [](uv_timer_t* t) noexcept {
            static_cast<SessionHarness*>(t->data)->m_timed_out = true;
        }, timeout_ms, 0);
        bool met = false;
        while (!(met = done()) && !m_timed_out)
            uv_run(&m_loop, UV_RUN_ONCE);
        uv_timer_stop(&m_deadline);
        return met;
    }
    // Runs whatever is ready, without waiting for anything new.
    void settle()
    {
        for (int i = 0; i < 8; ++i)
            uv_run(&m_loop, UV_RUN_NOWAIT);
    }
    bool client_sees_close() { return pump_until([&] { return client_eof; }); }

    Router router;
    SessionContext context;
    std::string input; // what the client received and the test did not take
    bool client_eof = false;
    int closed = 0;    // the session's close callbacks

private:
    void read_client()
    {
        char buf[65536];
        ssize_t n = ::recv(m_client.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            input.append(buf, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            client_eof = true;
            uv_poll_stop(&m_client_poll);
        }
    }

    uv_loop_t m_loop {};
    UniqueFd m_client;
    HttpSession* m_session = nullptr;
    uv_poll_t m_client_poll {};
    uv_timer_t m_deadline {};
    bool m_timed_out = false;
};

}
