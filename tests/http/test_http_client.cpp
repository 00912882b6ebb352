// HttpClient against a real HTTP server on 127.0.0.1: a thread per accepted
// connection, each running a test's script with blocking sockets, while the
// test's own thread drives the client's libuv loop.
#include "support/test_loop.h"
#include "common/address.h"
#include "http/http_client.h"
#include "worker/machine_addresses.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

using namespace posta;
using posta::test::RefusingPort;
using posta::test::TestLoop;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct ReceivedRequest {
    std::string head; // request line and headers, as sent
    std::string body;

    bool has_header_line(std::string_view line) const
    {
        return head.find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
    }
    bool has_header_name(std::string_view name) const
    {
        std::string lowered_head;
        for (char c : head)
            lowered_head += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return lowered_head.find("\r\n" + std::string(name) + ":") != std::string::npos;
    }
};

class TestServer;

// One accepted connection, seen from the server's side.
class Connection {
public:
    Connection(TestServer& server, int fd)
        : m_server(server)
        , m_fd(fd)
    {
    }
    ~Connection()
    {
        if (m_fd >= 0)
            ::close(m_fd);
    }

    // Reads one request (head, then a Content-Length body); nullopt when the
    // client went away or the server stops.
    std::optional<ReceivedRequest> read_request();
    void send(std::string_view bytes);
    // Holds the connection open, answering nothing, until the client closes
    // it or the server stops.
    void hold();
    // Waits for any bytes at all; false when none come.
    bool read_some();
    // Closes with a TCP reset (SO_LINGER 0) instead of a FIN.
    void reset();

private:
    bool wait_readable();

    TestServer& m_server;
    int m_fd;
    std::string m_buffer;
};

class TestServer {
public:
    using Script = std::function<void(Connection&)>;

    explicit TestServer(Script script)
        : m_script(std::move(script))
    {
        REQUIRE(::pipe2(m_stop, O_CLOEXEC) == 0);
        m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(m_listen >= 0);
        sockaddr_in address {};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(m_listen, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(m_listen, 16) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(m_listen, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        m_port = ntohs(address.sin_port);
        m_acceptor = std::thread([this] { accept_loop(); });
    }

    ~TestServer()
    {
        char byte = 1;
        (void)!::write(m_stop[1], &byte, 1);
        m_acceptor.join();
        for (auto& thread : m_connections)
            thread.join();
        ::close(m_listen);
        ::close(m_stop[0]);
        ::close(m_stop[1]);
    }

    std::string url(std::string_view path = "/") const
    {
        return "http://127.0.0.1:" + std::to_string(m_port) + std::string(path);
    }
    uint16_t port() const { return m_port; }
    int stop_fd() const { return m_stop[0]; }

    int accepted() const { return m_accepted.load(); }
    size_t request_count() const
    {
        std::lock_guard lock(m_mutex);
        return m_requests.size();
    }
    ReceivedRequest request(size_t index) const
    {
        std::lock_guard lock(m_mutex);
        return m_requests.at(index);
    }
    void record(ReceivedRequest const& request)
    {
        std::lock_guard lock(m_mutex);
        m_requests.push_back(request);
    }

    // For scripts: waits (with a deadline) until `count` connections were accepted.
    bool wait_for_accepted(int count)
    {
        std::unique_lock lock(m_mutex);
        return m_changed.wait_for(lock, 5s, [&] { return m_accepted.load() >= count; });
    }

private:
    void accept_loop()
    {
        for (;;) {
            pollfd fds[2] = { { m_listen, POLLIN, 0 }, { m_stop[0], POLLIN, 0 } };
            if (::poll(fds, 2, -1) < 0)
                continue;
            if (fds[1].revents)
                return;
            int fd = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            {
                std::lock_guard lock(m_mutex);
                ++m_accepted;
            }
            m_changed.notify_all();
            m_connections.emplace_back([this, fd] {
                Connection connection(*this, fd);
                m_script(connection);
            });
        }
    }

    Script m_script;
    int m_stop[2] = { -1, -1 };
    int m_listen = -1;
    uint16_t m_port = 0;
    std::thread m_acceptor;
    std::vector<std::thread> m_connections; // touched by the acceptor only, joined after it
    std::atomic<int> m_accepted { 0 };
    mutable std::mutex m_mutex;
    std::condition_variable m_changed;
    std::vector<ReceivedRequest> m_requests;
};

bool Connection::wait_readable()
{
    pollfd fds[2] = { { m_fd, POLLIN, 0 }, { m_server.stop_fd(), POLLIN, 0 } };
    if (::poll(fds, 2, 10000) <= 0)
        return false;
    return fds[1].revents == 0;
}

std::optional<ReceivedRequest> Connection::read_request()
{
    auto fill = [this] {
        if (!wait_readable())
            return false;
        char chunk[4096];
        ssize_t n = ::recv(m_fd, chunk, sizeof chunk, 0);
        if (n <= 0)
            return false;
        m_buffer.append(chunk, static_cast<size_t>(n));
        return true;
    };
    size_t end;
    while ((end = m_buffer.find("\r\n\r\n")) == std::string::npos) {
        if (!fill())
            return std::nullopt;
    }
    ReceivedRequest request;
    request.head = m_buffer.substr(0, end + 2);
    m_buffer.erase(0, end + 4);
    size_t length = 0;
    std::string lowered;
    for (char c : request.head)
        lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (size_t at = lowered.find("\r\ncontent-length:"); at != std::string::npos)
        length = std::stoul(request.head.substr(at + 17));
    while (m_buffer.size() < length) {
        if (!fill())
            return std::nullopt;
    }
    request.body = m_buffer.substr(0, length);
    m_buffer.erase(0, length);
    m_server.record(request);
    return request;
}

void Connection::send(std::string_view bytes)
{
    while (!bytes.empty()) {
        ssize_t n = ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0)
            return;
        bytes.remove_prefix(static_cast<size_t>(n));
    }
}

void Connection::hold()
{
    char chunk[4096];
    while (wait_readable()) {
        if (::recv(m_fd, chunk, sizeof chunk, 0) <= 0)
            return;
    }
}

bool Connection::read_some()
{
    char chunk[4096];
    return wait_readable() && ::recv(m_fd, chunk, sizeof chunk, 0) > 0;
}

void Connection::reset()
{
    linger option { 1, 0 };
    ::setsockopt(m_fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
    ::close(std::exchange(m_fd, -1));
}

std::string response(std::string_view status, std::string_view headers, std::string_view body)
{
    return "HTTP/1.1 " + std::string(status) + "\r\n" + std::string(headers) + "Content-Length: "
        + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

struct Outcome {
    int calls = 0;
    std::optional<Result<HttpClientResponse>> result;

    HttpClient::Callback callback()
    {
        return [this](Result<HttpClientResponse> r) {
            ++calls;
            result.emplace(std::move(r));
        };
    }
    bool done() const { return calls > 0; }
    HttpClientResponse const& response() const
    {
        REQUIRE(result.has_value());
        if (!result->ok())
            FAIL_CHECK("request failed: " << result->error().text());
        REQUIRE(result->ok());
        return result->value();
    }
    HttpClientError error() const
    {
        REQUIRE(result.has_value());
        REQUIRE_FALSE(result->ok());
        return http_client_error(result->error());
    }
};

std::unique_ptr<HttpClient> make_client(TestLoop& loop)
{
    REQUIRE(HttpClient::init_global().ok());
    auto client = HttpClient::create(loop.get(), "test");
    REQUIRE(client.ok());
    return std::move(client).value();
}

HttpClientRequest get(std::string url)
{
    HttpClientRequest request;
    request.url = std::move(url);
    return request;
}

void answer_hello(Connection& c)
{
    if (c.read_request())
        c.send(response("200 OK", "Content-Type: text/plain\r\nX-Posta-Test: Yes\r\n", "hello"));
}

}

TEST_CASE("a GET returns the status, the body and the headers with lower-cased names")
{
    TestLoop loop;
    TestServer server(answer_hello);
    auto client = make_client(loop);

    Outcome outcome;
    client->start(get(server.url("/hello")), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));

    auto const& response = outcome.response();
    CHECK(response.status == 200);
    CHECK(response.body == "hello");
    CHECK(response.header("X-Posta-Test") == "Yes");
    CHECK(response.header("content-type") == "text/plain");
    bool has_lowered = false;
    for (auto const& [name, value] : response.headers)
        has_lowered = has_lowered || name == "x-posta-test";
    CHECK(has_lowered);

    REQUIRE(server.request_count() == 1);
    ReceivedRequest request = server.request(0);
    CHECK(request.head.starts_with("GET /hello HTTP/1.1\r\n"));
    CHECK(request.has_header_line("User-Agent: posta-server/test"));
    CHECK(outcome.calls == 1);
    CHECK(client->in_flight() == 0);
}

TEST_CASE("a host name is resolved without blocking and the request completes")
{
    TestLoop loop;
    TestServer server(answer_hello);
    auto client = make_client(loop);

    Outcome outcome;
    client->start(get("http://localhost:" + std::to_string(server.port()) + "/"), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.response().status == 200);
    CHECK(outcome.response().body == "hello");
}

TEST_CASE("a POST body arrives exactly as given, with the caller's headers and no Expect")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (auto request = c.read_request())
            c.send(response("202 Accepted", "Content-Type: application/json\r\n", R"({"status": "accepted"})"));
    });
    auto client = make_client(loop);

    std::string body = "{\"line\": \"one\\r\\ntwo\"}\r\n";
    body += std::string("\0binary\xff", 8);
    body += std::string(1024 * 1024 + 3000, 'x'); // past curl's 1 MiB threshold for Expect: 100-continue

    HttpClientRequest request;
    request.method = "POST";
    request.url = server.url("/inbox");
    request.headers = { { "Content-Type", "application/json" }, { "Posta-Signature", "ed25519=abc" } };
    request.body = body;

    Outcome outcome;
    auto started = Clock::now();
    client->start(std::move(request), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(Clock::now() - started < 900ms); // no wait for a 100 Continue

    CHECK(outcome.response().status == 202);
    CHECK(outcome.response().body == R"({"status": "accepted"})");
    REQUIRE(server.request_count() == 1);
    ReceivedRequest received = server.request(0);
    CHECK(received.head.starts_with("POST /inbox HTTP/1.1\r\n"));
    CHECK(received.body == body);
    CHECK(received.has_header_line("Content-Type: application/json"));
    CHECK(received.has_header_line("Posta-Signature: ed25519=abc"));
    CHECK(received.has_header_line("Content-Length: " + std::to_string(body.size())));
    CHECK_FALSE(received.has_header_name("expect"));
}

TEST_CASE("a POST without a Content-Type sends none rather than a form type")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (c.read_request())
            c.send(response("204 No Content", "", ""));
    });
    auto client = make_client(loop);

    HttpClientRequest request;
    request.method = "POST";
    request.url = server.url("/");
    request.body = "raw";
    Outcome outcome;
    client->start(std::move(request), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.response().status == 204);
    REQUIRE(server.request_count() == 1);
    CHECK_FALSE(server.request(0).has_header_name("content-type"));
    CHECK(server.request(0).body == "raw");
}

TEST_CASE("a 503 answer is passed through as a response, not an error")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (c.read_request())
            c.send(response("503 Service Unavailable", "Retry-After: 7\r\n", R"({"error": "busy"})"));
    });
    auto client = make_client(loop);

    Outcome outcome;
    client->start(get(server.url()), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.response().status == 503);
    CHECK(outcome.response().header("retry-after") == "7");
    CHECK(outcome.response().body == R"({"error": "busy"})");
}

TEST_CASE("a redirect is returned as it is, never followed")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (c.read_request())
            c.send(response("302 Found", "Location: /elsewhere\r\n", ""));
    });
    auto client = make_client(loop);

    Outcome outcome;
    client->start(get(server.url()), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.response().status == 302);
    CHECK(outcome.response().header("location") == "/elsewhere");
    CHECK(server.request_count() == 1);
}

TEST_CASE("a response followed at once by a reset is still read")
{
    // The reset makes epoll report an error on the socket while the answer
    // still waits in its receive buffer; curl must get to read it.
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (!c.read_request())
            return;
        c.send(response("200 OK", "", "complete"));
        c.reset();
    });
    auto client = make_client(loop);

    for (int i = 0; i < 20; ++i) {
        Outcome outcome;
        client->start(get(server.url()), outcome.callback());
        REQUIRE(loop.run_until([&] { return outcome.done(); }));
        CHECK(outcome.response().body == "complete");
    }
}

TEST_CASE("a refused connection is a Connect error with curl's message and the URL")
{
    TestLoop loop;
    auto client = make_client(loop);
    RefusingPort refusing;
    std::string url = refusing.url() + "/";

    Outcome outcome;
    client->start(get(url), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.error() == HttpClientError::Connect);
    CHECK(outcome.result->error().domain == ErrorDomain::HttpClient);
    CHECK(outcome.result->error().context == url);
    CHECK_FALSE(outcome.result->error().detail.empty());
}

TEST_CASE("a connect hook that refuses the address fails the request with Refused and its words, unconnected")
{
    TestLoop loop;
    TestServer server(answer_hello);
    auto client = make_client(loop);
    std::vector<std::string> seen;
    client->set_connect_hook([&](HttpConnectAttempt const& attempt) -> std::optional<std::string> {
        seen.push_back(format_address(attempt.address, attempt.length));
        if (attempt.url.ends_with("/refused"))
            return "not this one";
        return std::nullopt;
    });

    Outcome refused;
    client->start(get(server.url("/refused")), refused.callback());
    REQUIRE(loop.run_until([&] { return refused.done(); }));
    CHECK(refused.error() == HttpClientError::Refused);
    CHECK(refused.result->error().detail == "not this one");
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == "127.0.0.1:" + std::to_string(server.port()));

    // A connection the refused request had made would be accepted before
    // this one's, so one accept after this answer means it made none.
    Outcome allowed;
    client->start(get(server.url("/")), allowed.callback());
    REQUIRE(loop.run_until([&] { return allowed.done(); }));
    REQUIRE(allowed.response().status == 200);
    CHECK(server.accepted() == 1);
}

TEST_CASE("a proxy from the environment cannot carry a request past the connect hook")
{
    TestLoop loop;
    TestServer proxy(answer_hello);
    TestServer target(answer_hello);
    auto client = make_client(loop);
    client->set_connect_hook([&](HttpConnectAttempt const& attempt) -> std::optional<std::string> {
        if (format_address(attempt.address, attempt.length).ends_with(":" + std::to_string(target.port())))
            return "not the target";
        return std::nullopt;
    });
    std::string proxy_url = proxy.url("");
    for (char const* name : { "http_proxy", "HTTP_PROXY", "https_proxy", "ALL_PROXY", "all_proxy" })
        ::setenv(name, proxy_url.c_str(), 1);
    Outcome outcome;
    client->start(get(target.url("/")), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    for (char const* name : { "http_proxy", "HTTP_PROXY", "https_proxy", "ALL_PROXY", "all_proxy" })
        ::unsetenv(name);
    CHECK(outcome.error() == HttpClientError::Refused);
    CHECK(proxy.accepted() == 0);
    CHECK(target.accepted() == 0);
}

TEST_CASE("the outbox's address book keeps the first address a request tried per host and port, refused or not")
{
    TestLoop loop;
    auto client = make_client(loop);
    MachineAddresses machines;
    client->set_connect_hook([&](HttpConnectAttempt const& attempt) -> std::optional<std::string> {
        machines.note(attempt);
        return std::nullopt;
    });
    RefusingPort refusing;
    std::string port = std::to_string(refusing.port());
    std::string url = "http://127.0.0.1:" + port + "/inbox";
    CHECK_FALSE(machines.address_of(url).has_value());

    Outcome refused;
    client->start(get(url), refused.callback());
    REQUIRE(loop.run_until([&] { return refused.done(); }));
    REQUIRE(refused.error() == HttpClientError::Connect);
    CHECK(machines.address_of(url) == "127.0.0.1:" + port);
    // Any URL of that host and port; not another port, nor garbage.
    CHECK(machines.address_of("http://127.0.0.1:" + port) == "127.0.0.1:" + port);
    CHECK_FALSE(machines.address_of("http://127.0.0.1:1/").has_value());
    CHECK_FALSE(machines.address_of("not a url").has_value());

    // A name is kept under the name, with the address it led to.
    TestServer server(answer_hello);
    std::string named = "http://LocalHost:" + std::to_string(server.port()) + "/";
    Outcome answered;
    client->start(get(named), answered.callback());
    REQUIRE(loop.run_until([&] { return answered.done(); }));
    REQUIRE(answered.response().status == 200);
    auto address = machines.address_of("http://localhost:" + std::to_string(server.port()) + "/.well-known/posta");
    REQUIRE(address.has_value());
    CHECK(address->ends_with(":" + std::to_string(server.port())));
}

TEST_CASE("https to a server that does not speak TLS is a Tls error")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (c.read_some())
            c.send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    auto client = make_client(loop);

    Outcome outcome;
    client->start(get("https://127.0.0.1:" + std::to_string(server.port()) + "/"), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.error() == HttpClientError::Tls);
}

TEST_CASE("HEAD and DELETE are sent with their method, and HEAD reads no body")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        while (auto request = c.read_request()) {
            if (request->head.starts_with("HEAD "))
                c.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"); // no body follows
            else
                c.send(response("204 No Content", "", ""));
        }
    });
    auto client = make_client(loop);

    HttpClientRequest head = get(server.url("/doc"));
    head.method = "HEAD";
    Outcome head_outcome;
    client->start(std::move(head), head_outcome.callback());
    REQUIRE(loop.run_until([&] { return head_outcome.done(); }));
    CHECK(head_outcome.response().status == 200);
    CHECK(head_outcome.response().header("content-length") == "5");
    CHECK(head_outcome.response().body.empty());

    HttpClientRequest remove = get(server.url("/doc"));
    remove.method = "DELETE";
    Outcome delete_outcome;
    client->start(std::move(remove), delete_outcome.callback());
    REQUIRE(loop.run_until([&] { return delete_outcome.done(); }));
    CHECK(delete_outcome.response().status == 204);

    REQUIRE(server.request_count() == 2);
    CHECK(server.request(0).head.starts_with("HEAD /doc HTTP/1.1\r\n"));
    CHECK(server.request(1).head.starts_with("DELETE /doc HTTP/1.1\r\n"));
}

TEST_CASE("a server that never answers times out within the configured timeout")
{
    TestLoop loop;
    TestServer server([](Connection& c) { c.hold(); });
    auto client = make_client(loop);

    HttpClientRequest request = get(server.url());
    request.timeout = 300ms;
    Outcome outcome;
    auto started = Clock::now();
    client->start(std::move(request), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    auto elapsed = Clock::now() - started;
    CHECK(outcome.error() == HttpClientError::Timeout);
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 2s);
}

TEST_CASE("a Content-Length beyond the bound fails with TooLarge before the body comes")
{
    TestLoop loop;
    // Announces a large body, sends a little of it, then stalls: only the
    // Content-Length can tell the client in time.
    TestServer server([](Connection& c) {
        if (!c.read_request())
            return;
        c.send("HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\nabc");
        c.hold();
    });
    auto client = make_client(loop);

    HttpClientRequest request = get(server.url());
    request.max_response_bytes = 1000;
    request.timeout = 3s;
    Outcome outcome;
    auto started = Clock::now();
    client->start(std::move(request), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.error() == HttpClientError::TooLarge);
    CHECK(Clock::now() - started < 1s);
    CHECK(outcome.result->error().detail.find("status 200") != std::string::npos);
}

TEST_CASE("a chunked body that grows past the bound is cut off with TooLarge")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (!c.read_request())
            return;
        c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        std::string chunk(8192, 'b');
        for (int i = 0; i < 16; ++i)
            c.send("2000\r\n" + chunk + "\r\n");
        c.send("0\r\n\r\n");
    });
    auto client = make_client(loop);

    HttpClientRequest request = get(server.url());
    request.max_response_bytes = 20000;
    Outcome outcome;
    client->start(std::move(request), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.error() == HttpClientError::TooLarge);
    CHECK(outcome.result->error().detail.find("20000") != std::string::npos);
}

TEST_CASE("a body exactly at the bound is accepted")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (c.read_request())
            c.send(response("200 OK", "", std::string(1000, 'c')));
    });
    auto client = make_client(loop);

    HttpClientRequest request = get(server.url());
    request.max_response_bytes = 1000;
    Outcome outcome;
    client->start(std::move(request), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.response().body.size() == 1000);
}

TEST_CASE("a response head past its bound fails with TooLarge")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (!c.read_request())
            return;
        std::string headers;
        for (int i = 0; i < 80; ++i)
            headers += "X-Fill-" + std::to_string(i) + ": " + std::string(1000, 'h') + "\r\n";
        c.send(response("200 OK", headers, "ok"));
    });
    auto client = make_client(loop);

    Outcome outcome;
    client->start(get(server.url()), outcome.callback());
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.error() == HttpClientError::TooLarge);
}

TEST_CASE("two concurrent requests both complete")
{
    TestLoop loop;
    // Neither is answered before both connections are open: they are in
    // flight at the same time.
    TestServer server([&](Connection& c) {
        auto request = c.read_request();
        if (!request)
            return;
        if (!server.wait_for_accepted(2))
            return;
        std::string path = request->head.substr(4, request->head.find(' ', 4) - 4);
        c.send(response("200 OK", "", "for " + path));
    });
    auto client = make_client(loop);

    Outcome first;
    Outcome second;
    client->start(get(server.url("/one")), first.callback());
    client->start(get(server.url("/two")), second.callback());
    CHECK(client->in_flight() == 2);
    REQUIRE(loop.run_until([&] { return first.done() && second.done(); }));
    CHECK(first.response().body == "for /one");
    CHECK(second.response().body == "for /two");
    CHECK(server.accepted() == 2);
    CHECK(client->in_flight() == 0);
}

TEST_CASE("cancel calls the callback once, later, with Cancelled")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (c.read_request())
            c.hold();
    });
    auto client = make_client(loop);

    Outcome outcome;
    HttpRequestId id = client->start(get(server.url()), outcome.callback());
    REQUIRE(loop.run_until([&] { return server.request_count() == 1; }));
    client->cancel(id);
    CHECK(outcome.calls == 0); // never from inside cancel()
    REQUIRE(loop.run_until([&] { return outcome.done(); }));
    CHECK(outcome.error() == HttpClientError::Cancelled);

    client->cancel(id); // already finished: ignored
    client->cancel(12345); // never existed: ignored
    loop.run_until([] { return false; }, 100ms);
    CHECK(outcome.calls == 1);
    CHECK(client->in_flight() == 0);
}

TEST_CASE("a callback is never called from inside start, even for a bad request")
{
    TestLoop loop;
    auto client = make_client(loop);

    Outcome bad_header;
    HttpClientRequest request = get("http://127.0.0.1:1/");
    request.headers = { { "X-Injected", "a\r\nHost: evil" } };
    client->start(std::move(request), bad_header.callback());

    Outcome bad_scheme;
    client->start(get("ftp://127.0.0.1/file"), bad_scheme.callback());

    Outcome bad_method;
    HttpClientRequest spaced = get("http://127.0.0.1:1/");
    spaced.method = "GET /x";
    client->start(std::move(spaced), bad_method.callback());

    CHECK(bad_header.calls == 0);
    CHECK(bad_scheme.calls == 0);
    CHECK(bad_method.calls == 0);
    CHECK(client->in_flight() == 3);
    REQUIRE(loop.run_until([&] { return bad_header.done() && bad_scheme.done() && bad_method.done(); }));
    CHECK(bad_header.error() == HttpClientError::Invalid);
    CHECK(bad_scheme.error() == HttpClientError::Invalid);
    CHECK(bad_method.error() == HttpClientError::Invalid);
    CHECK(bad_header.calls == 1);
}

TEST_CASE("a callback may start the next request")
{
    TestLoop loop;
    TestServer server(answer_hello);
    auto client = make_client(loop);

    Outcome second;
    Outcome first;
    client->start(get(server.url("/a")), [&](Result<HttpClientResponse> r) {
        first.result.emplace(std::move(r));
        ++first.calls;
        client->start(get(server.url("/b")), second.callback());
    });
    REQUIRE(loop.run_until([&] { return second.done(); }));
    CHECK(first.response().status == 200);
    CHECK(second.response().status == 200);
    CHECK(server.request_count() == 2);
}

TEST_CASE("close cancels every request in flight and refuses later ones")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (c.read_request())
            c.hold();
    });
    auto client = make_client(loop);

    Outcome first;
    Outcome second;
    client->start(get(server.url("/1")), first.callback());
    client->start(get(server.url("/2")), second.callback());
    REQUIRE(loop.run_until([&] { return server.request_count() == 2; }));

    client->close();
    Outcome late;
    client->start(get(server.url("/3")), late.callback());
    CHECK(first.calls + second.calls + late.calls == 0);
    REQUIRE(loop.run_until([&] { return first.done() && second.done() && late.done(); }));
    CHECK(first.error() == HttpClientError::Cancelled);
    CHECK(second.error() == HttpClientError::Cancelled);
    CHECK(late.error() == HttpClientError::Cancelled);
    CHECK(client->in_flight() == 0);

    // Nothing of the client keeps the loop running any more.
    uv_run(loop.get(), UV_RUN_NOWAIT);
    CHECK_FALSE(uv_loop_alive(loop.get()));
    CHECK(server.request_count() == 2);
}

TEST_CASE("destroying the client with requests in flight calls no callback and leaves no handle")
{
    TestLoop loop;
    TestServer server([](Connection& c) {
        if (c.read_request())
            c.hold();
    });
    auto client = make_client(loop);

    Outcome held;
    Outcome queued;
    client->start(get(server.url()), held.callback());
    REQUIRE(loop.run_until([&] { return server.request_count() == 1; }));
    HttpClientRequest bad = get(server.url());
    bad.timeout = Duration(0);
    client->start(std::move(bad), queued.callback()); // decided, not yet delivered
    client.reset();
    loop.run_until([] { return false; }, 100ms);
    CHECK(held.calls == 0);
    CHECK(queued.calls == 0);
    // ~TestLoop checks that uv_loop_close finds no handle left.
}

TEST_CASE("a callback may destroy the client; the callbacks still queued are dropped")
{
    TestLoop loop;
    auto client = make_client(loop);

    int calls = 0;
    auto destroy = [&](Result<HttpClientResponse>) {
        ++calls;
        client.reset();
    };
    client->start(get("ftp://127.0.0.1/a"), destroy);
    client->start(get("ftp://127.0.0.1/b"), destroy);
    REQUIRE(loop.run_until([&] { return client == nullptr; }));
    loop.run_until([] { return false; }, 50ms);
    CHECK(calls == 1);
}

TEST_CASE("a response's header() joins repeated fields and ignores case")
{
    HttpClientResponse response;
    response.headers = { { "vary", "accept" }, { "content-type", "text/plain" }, { "vary", "origin" } };
    CHECK(response.header("Vary") == "accept, origin");
    CHECK(response.header("CONTENT-TYPE") == "text/plain");
    CHECK(response.header("retry-after").empty());
}

TEST_CASE("an error that did not come from the client is Internal")
{
    CHECK(http_client_error(Error::message("open", "nope")) == HttpClientError::Internal);
    CHECK(std::string(http_client_error_name(HttpClientError::TooLarge)) == "too_large");
}
