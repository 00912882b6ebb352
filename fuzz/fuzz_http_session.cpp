// Fuzz target: the worker's HTTP request parsing, through the real
// HttpSession on a real (Unix) stream socket and loop. The input's first byte
// chooses how much of the rest arrives as the supervisor's prefix; the
// remainder is written to the socket, then the client half-closes. The
// session must close by itself, answer every request a handler got, never
// hand a handler a request for another host, and write only well-formed
// HTTP responses (checked with llhttp as a client would).
#include "common/host_key.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "fuzz_invariant.h"
#include "http/http_session.h"
#include "http/router.h"

#include <cerrno>
#include <cstdint>
#include <llhttp.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <uv.h>
#include <vector>

using namespace posta;
using posta::fuzz::fail;
using posta::fuzz::require;

namespace {

constexpr std::string_view host_key = "arne.test";
// Long enough for any input to finish; only a session that never closes hits it.
constexpr uint64_t deadline_ms = 10'000;

// The client side of one connection: writes the input, reads and parses the
// answers.
struct Client {
    UniqueFd fd;
    uv_poll_t poll {};
    std::string_view to_send;
    bool shut_down = false;
    bool eof = false;
    bool reset = false;

    llhttp_t parser {};
    bool check_responses = false;
    int final_responses = 0;
};

// What lives across inputs: the loop, the routes and the shared context.
struct World {
    uv_loop_t loop {};
    Router router;
    SessionContext context;
    uv_timer_t later_timer {};
    std::vector<Responder> later; // answered on the next loop turn
    int dispatched = 0;
    int closed = 0;
    bool timed_out = false;
};

World* world = nullptr;

void check_host(Request const& request)
{
    if (request.target.empty() || request.target.front() != '/')
        return; // absolute-form: its authority was checked instead of Host
    auto host = request.headers.get("Host");
    if (!host) {
        require(request.http_minor == 0, "an HTTP/1.1 request without Host reached a handler");
        return;
    }
    auto key = host_key_from_header(*host);
    require(key && *key == host_key, "a request for another host reached a handler");
}

Handler counted(Handler handler)
{
    return [handler = std::move(handler)](Request request, Responder responder) {
        ++world->dispatched;
        check_host(request);
        handler(std::move(request), std::move(responder));
    };
}

void answer_later(uv_timer_t*) noexcept
{
    auto pending = std::move(world->later);
    world->later.clear();
    for (Responder& responder : pending) {
        Response r;
        r.body = "later";
        responder.respond(std::move(r));
    }
}

void set_up()
{
    world = new World;
    log::configure(log::Level::Error, log::Format::Text);
    if (uv_loop_init(&world->loop) != 0)
        fail("uv_loop_init");
    uv_timer_init(&world->loop, &world->later_timer);
    uv_unref(reinterpret_cast<uv_handle_t*>(&world->later_timer));

    Router& router = world->router;
    router.add("GET", "/sync", counted([](Request request, Responder responder) {
        Response r;
        r.body = "sync " + request.query;
        responder.respond(std::move(r));
    }));
    router.add("POST", "/echo", counted([](Request request, Responder responder) {
        Response r;
        r.headers.add("Content-Type", "application/octet-stream");
        r.body = std::move(request.body);
        responder.respond(std::move(r));
    }));
    router.add_prefix("GET", "/later", counted([](Request, Responder responder) {
        world->later.push_back(std::move(responder));
        uv_timer_start(&world->later_timer, answer_later, 0, 0);
    }));
    router.add("GET", "/empty", counted([](Request, Responder responder) { responder.respond(Response { 204, {}, {} }); }));
    router.add("GET", "/drop", counted([](Request, Responder) {}));
    router.add("GET", "/throw", counted([](Request, Responder) { throw std::runtime_error("fuzz"); }));

    SessionContext& context = world->context;
    context.loop = &world->loop;
    context.router = &world->router;
    context.host_key = std::string(host_key);
    context.max_head_bytes = 1024; // small, so that 431 and 413 are in reach
    context.max_body_bytes = 2048;
    context.head_timeout = std::chrono::seconds(5);
    context.on_closed = [](HttpSession&) { ++world->closed; };
}

// ---- The client's response parser ----

int on_response_headers(llhttp_t* parser) noexcept
{
    auto& client = *static_cast<Client*>(parser->data);
    if (parser->status_code >= 200)
        ++client.final_responses;
    return 0;
}

void take_answer(Client& client, char const* bytes, size_t length)
{
    if (!client.check_responses)
        return;
    llhttp_errno_t err = llhttp_execute(&client.parser, bytes, length);
    if (err != HPE_OK) {
        std::fprintf(stderr, "llhttp: %s: %s\n", llhttp_errno_name(err), llhttp_get_error_reason(&client.parser));
        fail("the session wrote a malformed response");
    }
}

void on_client_event(uv_poll_t* poll, int status, int events) noexcept
{
    auto& client = *static_cast<Client*>(poll->data);
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE; // let send and recv report it
    if ((events & UV_WRITABLE) && !client.shut_down) {
        while (!client.to_send.empty()) {
            ssize_t n = ::send(client.fd.get(), client.to_send.data(), client.to_send.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0)
                break;
            client.to_send.remove_prefix(static_cast<size_t>(n));
        }
        if (client.to_send.empty() || (errno != EAGAIN && errno != EINTR)) {
            ::shutdown(client.fd.get(), SHUT_WR);
            client.shut_down = true;
        }
    }
    if (events & UV_READABLE) {
        char buf[16384];
        while (true) {
            ssize_t n = ::recv(client.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                take_answer(client, buf, static_cast<size_t>(n));
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                client.eof = true;
                client.reset = n < 0;
            }
            break;
        }
    }
    if (client.eof)
        uv_poll_stop(poll);
    else
        uv_poll_start(poll, client.shut_down ? UV_READABLE : UV_READABLE | UV_WRITABLE, on_client_event);
}

}

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    if (!world)
        set_up();
    if (size == 0)
        return 0;
    std::string_view input(reinterpret_cast<char const*>(data) + 1, size - 1);
    size_t prefix_length = input.size() * data[0] / 255;

    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        fail("socketpair");
    Client client;
    client.fd = UniqueFd(fds[0]);
    client.to_send = input.substr(prefix_length);
    // HEAD answers carry a Content-Length but no body: a client must know the
    // method to read them, so inputs that may hold one are not checked.
    client.check_responses = input.find("HEAD") == std::string_view::npos;
    static llhttp_settings_t const settings = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_headers_complete = on_response_headers;
        return s;
    }();
    llhttp_init(&client.parser, HTTP_RESPONSE, &settings);
    client.parser.data = &client;

    world->dispatched = 0;
    world->closed = 0;
    world->timed_out = false;
    auto session = HttpSession::create(world->context, UniqueFd(fds[1]), "127.0.0.1:1", "127.0.0.1",
        std::string(input.substr(0, prefix_length)));
    require(session.ok(), "HttpSession::create failed on a connected socket");

    uv_poll_init(&world->loop, &client.poll, client.fd.get());
    client.poll.data = &client;
    uv_poll_start(&client.poll, UV_READABLE | UV_WRITABLE, on_client_event);
    uv_timer_t deadline {};
    uv_timer_init(&world->loop, &deadline);
    uv_timer_start(&deadline, [](uv_timer_t*) noexcept { world->timed_out = true; }, deadline_ms, 0);

    while (!(world->closed == 1 && client.eof) && !world->timed_out)
        uv_run(&world->loop, UV_RUN_ONCE);
    require(!world->timed_out, "the session did not close within 10 s of the client's half-close");

    uv_close(reinterpret_cast<uv_handle_t*>(&client.poll), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
    // A handler may still hold an answer for a connection torn down under
    // it; answering now must be harmless (it is dropped).
    answer_later(nullptr);
    uv_run(&world->loop, UV_RUN_NOWAIT);

    if (client.check_responses && !client.reset) {
        if (llhttp_finish(&client.parser) != HPE_OK)
            fail("the session closed in the middle of a response");
        require(client.final_responses >= world->dispatched, "a request a handler answered got no response");
    }
    return 0;
}
