// A real worker: forked by a worker template of the posta-server binary
// ($POSTA_SERVER) as the supervisor has it forked (TemplateProcess, then the
// start message on its channel) with a temporary state_dir, and connections passed to it
// exactly as the supervisor passes them (fd, client address, consumed
// prefix). The test speaks HTTP over the client end of each connection.
#include "ipc/channel.h"
#include "config/config.h"
#include "ipc/worker_start.h"
#include "supervisor/template_process.h"
#include "support/test_support.h"

#include <csignal>
#include <cstdlib>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <poll.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace posta;
using namespace posta::test;

namespace {

std::string const doc_get = "GET /.well-known/posta HTTP/1.1\r\nHost: arne.test:8080\r\n\r\n";

class ForkedWorker {
public:
    explicit ForkedWorker(std::function<void(Config&, std::string const& identity_dir)> prepare = {})
    {
        m_config.state_dir = m_tmp.path() + "/state";
        m_config.log_level = log::Level::Debug;
        m_config.head_timeout = std::chrono::seconds(5);
        m_config.shutdown_timeout = std::chrono::seconds(5);
        m_config.max_head_bytes = 4096;
        m_config.max_body_bytes = 1024;
        if (prepare)
            prepare(m_config, identity_dir());
        m_identity.slug = "arne";
        m_identity.url = "http://arne.test:8080";
        m_identity.name = "Arne";
        m_identity.host_key = "arne.test";
        m_log_path = m_tmp.path() + "/worker.log";

        char const* exe = std::getenv("POSTA_SERVER");
        REQUIRE_MESSAGE(exe, "POSTA_SERVER must name the posta-server binary (meson test sets it)");
        // Like the supervisor, the test adopts the workers its template forks.
        REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
        auto channel = make_channel();
        REQUIRE(channel.ok());
        auto [ours, theirs] = std::move(channel.value());
        m_log.reset(::open(m_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
        REQUIRE(m_log.valid());
        REQUIRE(uv_loop_init(&m_loop) == 0);
        m_template.emplace(&m_loop, exe, m_log.get());
        std::optional<Result<pid_t>> forked;
        m_template->fork_worker(m_identity.slug, std::move(theirs), [&](Result<pid_t> answer) { forked = answer; });
        while (!forked)
            uv_run(&m_loop, UV_RUN_ONCE);
        REQUIRE_MESSAGE(forked->ok(), forked->error().text());
        m_pid = forked->value();
        m_channel = std::move(ours);
        // As the supervisor does: the worker reads the reloadable keys
        // from the policy.
        Policy policy;
        policy.take_config(m_config);
        auto sent = send_start(m_channel.get(), WorkerStart { m_identity, m_config, policy, ::getpid() }.serialize());
        REQUIRE_MESSAGE(sent.ok(), sent.error().text());
        m_pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, m_pid, 0)));
        REQUIRE(m_pidfd.valid());
    }

    ~ForkedWorker()
    {
        // Sanitizer reports of the child go to its log, not to the test's output.
        std::string text = log();
        CHECK_MESSAGE(text.find("Sanitizer") == std::string::npos, text);
        CHECK_MESSAGE(text.find("runtime error") == std::string::npos, text);
        if (!m_reaped) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, nullptr, 0);
        }
        pid_t forker = m_template->pid();
        m_template.reset(); // its channel closes: it exits
        uv_run(&m_loop, UV_RUN_DEFAULT);
        uv_loop_close(&m_loop);
        if (forker > 0)
            ::waitpid(forker, nullptr, 0);
    }

    std::string identity_dir() const { return m_config.state_dir + "/arne"; }
    std::string log() const { return read_file(m_log_path); }

    // True once the worker said `ready`; false if it closed its channel or
    // the deadline passed.
    bool wait_ready(Clock::duration timeout = 10s)
    {
        auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            pollfd p { m_channel.get(), POLLIN, 0 };
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 0))) <= 0)
                return false;
            auto message = receive_message(m_channel.get());
            REQUIRE(message.ok());
            if (!message.value())
                continue;
            return message.value()->type == MessageType::Ready;
        }
        return false;
    }

    // Sums the Taken credits the worker sends until they reach `expected` or
    // the deadline passes.
    uint32_t wait_taken(uint32_t expected, Clock::duration timeout = 5s)
    {
        uint32_t total = 0;
        auto deadline = Clock::now() + timeout;
        while (total < expected) {
            auto taken = next_message(MessageType::Taken, deadline);
            if (!taken)
                break;
            total += taken->count;
        }
        return total;
    }

    // The next message of `type` from the worker, skipping others; nullopt
    // once the deadline passed.
    std::optional<ChannelMessage> next_message(MessageType type, Clock::time_point deadline)
    {
        while (Clock::now() < deadline) {
            pollfd p { m_channel.get(), POLLIN, 0 };
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 0))) <= 0)
                break;
            auto message = receive_message(m_channel.get());
            REQUIRE(message.ok());
            if (message.value() && message.value()->type == type)
                return std::move(*message.value());
        }
        return std::nullopt;
    }

    // Passes a new connection, with `prefix` as the bytes "already read".
    HttpClient connect(std::string_view prefix = {})
    {
        TcpPair pair = make_tcp_pair();
        auto sent = send_connection(m_channel.get(), pair.server.get(),
            reinterpret_cast<sockaddr const*>(&pair.client_address), pair.client_address_len, prefix,
            ConnectionKind::Plain);
        REQUIRE_MESSAGE(sent.ok(), sent.error().text());
        return HttpClient(std::move(pair.client)); // our copy of the server end closes here
    }

    int channel() const { return m_channel.get(); }
    void close_channel() { m_channel.reset(); }
    void signal(int signum) { ::kill(m_pid, signum); }

    // The exit status, or 128 + signal; nullopt when still running at the deadline.
    std::optional<int> wait_exit(Clock::duration timeout = 10s)
    {
        pollfd p { m_pidfd.get(), POLLIN, 0 };
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
        if (::poll(&p, 1, static_cast<int>(ms)) <= 0)
            return std::nullopt;
        int status = 0;
        REQUIRE(::waitpid(m_pid, &status, 0) == m_pid);
        m_reaped = true;
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
    }

    // Polls the worker's log for `text` until the deadline.
    bool wait_log(std::string_view text, Clock::duration timeout = 5s)
    {
        auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            if (log().find(text) != std::string::npos)
                return true;
            ::poll(nullptr, 0, 10);
        }
        return log().find(text) != std::string::npos;
    }

private:
    TempDir m_tmp;
    Config m_config;
    IdentityEntry m_identity;
    std::string m_log_path;
    UniqueFd m_log;
    uv_loop_t m_loop {};
    std::optional<TemplateProcess> m_template;
    UniqueFd m_channel;
    pid_t m_pid = -1;
    UniqueFd m_pidfd;
    bool m_reaped = false;
};

// Where most tests start: a worker that said ready, and one connection
// passed to it.
class ReadyWorker {
public:
    ReadyWorker()
        : client(ready_connection(worker))
    {
    }

protected:
    ForkedWorker worker;
    HttpClient client;

private:
    static HttpClient ready_connection(ForkedWorker& forked)
    {
        REQUIRE(forked.wait_ready());
        return forked.connect();
    }
};

nlohmann::json error_body(HttpResponse const& r)
{
    auto body = nlohmann::json::parse(r.body, nullptr, false);
    REQUIRE(body.is_object());
    return body;
}

}

TEST_CASE("a worker creates its state, reports ready and serves its identity document")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    std::string dir = worker.identity_dir();
    CHECK(file_mode(dir) == 0700);
    CHECK(file_mode(dir + "/..") == 0700);
    CHECK(file_mode(dir + "/keys.json") == 0600);
    CHECK(file_mode(dir + "/inbox.db") == 0600);
    CHECK(worker.log().find("created " + dir + "/keys.json") != std::string::npos);

    auto client = worker.connect();
    auto r = client.exchange(doc_get);
    CHECK(r.status == 200);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.header("Cache-Control") == "max-age=300");
    CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
    CHECK(!r.header("Connection"));
    auto doc = nlohmann::json::parse(r.body);
    auto keys = nlohmann::json::parse(read_file(dir + "/keys.json"));
    CHECK(doc["posta"] == 1);
    CHECK(doc["url"] == "http://arne.test:8080");
    CHECK(doc["name"] == "Arne");
    CHECK(doc["inbox"] == "http://arne.test:8080/inbox");
    CHECK(doc["public_key"] == keys["public_key"]);
    CHECK(doc.size() == 5);
}

TEST_CASE("a worker answers a mint request with a token it stored and accepts, naming the request")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    REQUIRE(send_mint(worker.channel(), 41, MintKind::ApiToken).ok());
    REQUIRE(send_mint(worker.channel(), 42, MintKind::ApiToken).ok());
    auto first = worker.next_message(MessageType::Minted, Clock::now() + 10s);
    auto second = worker.next_message(MessageType::Minted, Clock::now() + 10s);
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->count == 41);
    CHECK(second->count == 42);
    CHECK(first->outcome == MintOutcome::Minted);
    CHECK(first->prefix.starts_with("posta_"));
    CHECK(first->prefix.size() == 49);
    CHECK(first->prefix != second->prefix);
    for (auto const* token : { &first->prefix, &second->prefix }) {
        auto client = worker.connect();
        auto r = client.exchange("GET /api/messages HTTP/1.1\r\nHost: arne.test:8080\r\nAuthorization: Bearer " + *token
            + "\r\n\r\n");
        CHECK(r.status == 200);
    }
    // The worker logs that it minted, never what.
    CHECK(worker.wait_log("minted an owner's API token"));
    CHECK(worker.log().find(first->prefix) == std::string::npos);
}

TEST_CASE("a worker answers a login mint request with a sign-in link that signs in once")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    REQUIRE(send_mint(worker.channel(), 7, MintKind::LoginLink).ok());
    auto minted = worker.next_message(MessageType::Minted, Clock::now() + 10s);
    REQUIRE(minted);
    CHECK(minted->count == 7);
    CHECK(minted->outcome == MintOutcome::Minted);
    std::string prefix = "http://arne.test:8080/#code=";
    REQUIRE(minted->prefix.starts_with(prefix));
    std::string code = minted->prefix.substr(prefix.size());
    CHECK(code.size() == 43);
    std::string body = "{\"code\":\"" + code + "\"}";
    for (int status : { 201, 401 }) {
        auto client = worker.connect();
        auto r = client.exchange("POST /api/session HTTP/1.1\r\nHost: arne.test:8080\r\nContent-Type: application/json\r\n"
                    "Content-Length: "
            + std::to_string(body.size()) + "\r\n\r\n" + body);
        CHECK(r.status == status);
    }
    CHECK(worker.log().find(code) == std::string::npos);
}

TEST_CASE("a worker reuses its keys across restarts")
{
    TempDir shared;
    std::string first_key;
    auto use_shared = [&](Config& config, std::string const&) { config.state_dir = shared.path(); };
    {
        ForkedWorker worker(use_shared);
        REQUIRE(worker.wait_ready());
        first_key = nlohmann::json::parse(read_file(shared.path() + "/arne/keys.json"))["public_key"];
        worker.close_channel();
        CHECK(worker.wait_exit() == 0);
    }
    ForkedWorker worker(use_shared);
    REQUIRE(worker.wait_ready());
    CHECK(worker.log().find("created") == std::string::npos);
    auto client = worker.connect();
    auto r = client.exchange(doc_get);
    CHECK(nlohmann::json::parse(r.body)["public_key"] == first_key);
}

TEST_CASE("every connection taken off the channel is credited back with Taken")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    std::vector<HttpClient> clients;
    for (int i = 0; i < 5; ++i)
        clients.push_back(worker.connect());
    CHECK(worker.wait_taken(5) == 5);
    for (auto& client : clients) {
        auto r = client.exchange(doc_get);
        CHECK(r.status == 200);
    }
}

TEST_CASE("bytes the supervisor already read are parsed before the socket")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    SUBCASE("part of the head in the prefix")
    {
        auto client = worker.connect(std::string_view(doc_get).substr(0, 20));
        auto r = client.exchange(std::string_view(doc_get).substr(20));
        CHECK(r.status == 200);
    }
    SUBCASE("the whole request in the prefix")
    {
        auto client = worker.connect(doc_get);
        auto r = client.read_response();
        REQUIRE(r);
        CHECK(r->status == 200);
    }
}

TEST_CASE_FIXTURE(ReadyWorker, "HEAD gets GET's headers and Content-Length and no body")
{
    auto head = client.exchange("HEAD /.well-known/posta HTTP/1.1\r\nHost: arne.test\r\n\r\n", true);
    // The next response must start right after HEAD's headers.
    auto get = client.exchange(doc_get);
    CHECK(head.status == 200);
    CHECK(get.status == 200);
    CHECK(head.header("Content-Length") == std::to_string(get.body.size()));
    CHECK(head.header("Content-Type") == "application/json");
    CHECK(head.header("Cache-Control") == "max-age=300");
    CHECK(client.extra().empty());
}

TEST_CASE_FIXTURE(ReadyWorker, "pipelined requests in one write are answered in order")
{
    client.send(doc_get + "GET /nope HTTP/1.1\r\nHost: arne.test\r\n\r\n" + doc_get);
    auto first = client.read_response();
    auto second = client.read_response();
    auto third = client.read_response();
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(third);
    CHECK(first->status == 200);
    CHECK(second->status == 404);
    CHECK(error_body(*second)["error"] == "not_found");
    CHECK(third->status == 200);
}

TEST_CASE_FIXTURE(ReadyWorker, "a chunked POST to an unknown path gets 404 after its body is consumed")
{
    auto r = client.exchange("POST /nope HTTP/1.1\r\nHost: arne.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        + doc_get);
    CHECK(r.status == 404);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(!r.header("Connection"));
    // Had the body not been consumed, its bytes would be parsed as a request.
    auto next = client.read_response();
    REQUIRE(next);
    CHECK(next->status == 200);
}

TEST_CASE_FIXTURE(ReadyWorker, "other methods on the identity document get 405 with Allow")
{
    auto r = client.exchange("DELETE /.well-known/posta HTTP/1.1\r\nHost: arne.test\r\n\r\n");
    CHECK(r.status == 405);
    CHECK(r.header("Allow") == "GET, HEAD, OPTIONS"); // OPTIONS: the CORS preflight
    CHECK(error_body(r)["error"] == "method_not_allowed");
}

TEST_CASE("a request for another identity's host gets 421 and the connection closes")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    SUBCASE("first request")
    {
        auto client = worker.connect();
        auto r = client.exchange("GET /.well-known/posta HTTP/1.1\r\nHost: marcus.test\r\n\r\n");
        CHECK(r.status == 421);
        CHECK(r.header("Connection") == "close");
        CHECK(error_body(r)["error"] == "misdirected_request");
        CHECK(client.wait_closed());
    }
    SUBCASE("a later request on a keep-alive connection")
    {
        auto client = worker.connect();
        client.send(doc_get + "GET /.well-known/posta HTTP/1.1\r\nHost: MARCUS.test.\r\n\r\n" + doc_get);
        auto ok = client.read_response();
        auto misdirected = client.read_response();
        REQUIRE(ok);
        REQUIRE(misdirected);
        CHECK(ok->status == 200);
        CHECK(misdirected->status == 421);
        CHECK(client.wait_closed());
        CHECK(client.extra().empty()); // the third request was not answered
    }
    SUBCASE("an absolute-form target names the host")
    {
        auto client = worker.connect();
        auto r = client.exchange("GET http://marcus.test/.well-known/posta HTTP/1.1\r\nHost: arne.test\r\n\r\n");
        CHECK(r.status == 421);
    }
    SUBCASE("the same host in another case, with a trailing dot and port, is this identity")
    {
        auto client = worker.connect();
        auto r = client.exchange("GET /.well-known/posta HTTP/1.1\r\nHost: ARNE.Test.:9999\r\n\r\n");
        CHECK(r.status == 200);
    }
}

TEST_CASE_FIXTURE(ReadyWorker, "HTTP/1.1 without Host gets 400 and the connection closes")
{
    auto r = client.exchange("GET /.well-known/posta HTTP/1.1\r\n\r\n");
    CHECK(r.status == 400);
    CHECK(r.header("Connection") == "close");
    CHECK(error_body(r)["error"] == "bad_request");
    CHECK(client.wait_closed());
}

TEST_CASE_FIXTURE(ReadyWorker, "a malformed request gets 400 and the connection closes")
{
    auto r = client.exchange("GET /.well-known/posta HTTP/1.1\r\nHost: arne.test\r\nBad Header\r\n\r\n");
    CHECK(r.status == 400);
    CHECK(client.wait_closed());
}

TEST_CASE_FIXTURE(ReadyWorker, "a body over max_body_bytes gets 413, never a truncated request")
{
    SUBCASE("Content-Length refused before the body is sent")
    {
        client.send("POST /inbox HTTP/1.1\r\nHost: arne.test\r\nContent-Length: 1025\r\n\r\n");
    }
    SUBCASE("Content-Length refused with the body on its way")
    {
        client.send("POST /inbox HTTP/1.1\r\nHost: arne.test\r\nContent-Length: 200000\r\n\r\n" + std::string(200000, 'x'));
    }
    SUBCASE("chunked body that grows too large")
    {
        std::string chunk = "400\r\n" + std::string(1024, 'x') + "\r\n";
        client.send("POST /inbox HTTP/1.1\r\nHost: arne.test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + chunk);
    }
    auto r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->header("Connection") == "close");
    CHECK(error_body(*r)["error"] == "body_too_large");
    CHECK(client.wait_closed());
}

TEST_CASE_FIXTURE(ReadyWorker, "a body of exactly max_body_bytes is accepted")
{
    auto r = client.exchange("POST /nope HTTP/1.1\r\nHost: arne.test\r\nContent-Length: 1024\r\n\r\n" + std::string(1024, 'x'));
    CHECK(r.status == 404);
}

TEST_CASE_FIXTURE(ReadyWorker, "a head over max_head_bytes gets 431")
{
    auto r = client.exchange("GET / HTTP/1.1\r\nHost: arne.test\r\nX-Big: " + std::string(5000, 'a') + "\r\n\r\n");
    CHECK(r.status == 431);
    CHECK(client.wait_closed());
}

TEST_CASE_FIXTURE(ReadyWorker, "Expect: 100-continue gets 100 Continue when the body is acceptable")
{
    SUBCASE("acceptable")
    {
        auto interim = client.exchange("POST /nope HTTP/1.1\r\nHost: arne.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        CHECK(interim.status == 100);
        auto r = client.exchange("hello");
        CHECK(r.status == 404);
    }
    SUBCASE("too large: 413 at once, no 100")
    {
        auto r = client.exchange("POST /nope HTTP/1.1\r\nHost: arne.test\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
        CHECK(r.status == 413);
    }
}

TEST_CASE("HTTP/1.0 closes after the answer unless keep-alive was asked")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    SUBCASE("plain HTTP/1.0, no Host needed")
    {
        auto client = worker.connect();
        auto r = client.exchange("GET /.well-known/posta HTTP/1.0\r\n\r\n");
        CHECK(r.status == 200);
        CHECK(r.header("Connection") == "close");
        CHECK(client.wait_closed());
    }
    SUBCASE("HTTP/1.0 with Connection: keep-alive")
    {
        auto client = worker.connect();
        std::string request = "GET /.well-known/posta HTTP/1.0\r\nHost: arne.test\r\nConnection: keep-alive\r\n\r\n";
        auto first = client.exchange(request);
        CHECK(first.header("Connection") == "keep-alive");
        auto second = client.exchange(request);
        CHECK(second.status == 200);
    }
    SUBCASE("HTTP/1.1 with Connection: close")
    {
        auto client = worker.connect();
        auto r = client.exchange("GET /.well-known/posta HTTP/1.1\r\nHost: arne.test\r\nConnection: close\r\n\r\n");
        CHECK(r.header("Connection") == "close");
        CHECK(client.wait_closed());
    }
}

TEST_CASE("a head that does not complete within head_timeout gets 408")
{
    ForkedWorker worker([](Config& config, std::string const&) { config.head_timeout = std::chrono::milliseconds(300); });
    REQUIRE(worker.wait_ready());
    auto client = worker.connect("GET /.well-known/posta HTTP/1.1\r\nHo");
    auto r = client.read_response(false, 5s);
    REQUIRE(r);
    CHECK(r->status == 408);
    CHECK(error_body(*r)["error"] == "request_timeout");
    CHECK(client.wait_closed());
}

TEST_CASE_FIXTURE(ReadyWorker, "closing the channel stops the worker: idle connections close and it exits 0")
{
    client.send(doc_get);
    REQUIRE(client.read_response());
    worker.close_channel();
    CHECK(client.wait_closed());
    CHECK(worker.wait_exit() == 0);
    CHECK(worker.log().find("stopping") != std::string::npos);
}

TEST_CASE_FIXTURE(ReadyWorker, "SIGTERM lets a request under way finish, with Connection: close, then exits 0")
{
    client.send("POST /nope HTTP/1.1\r\nHost: arne.test\r\nContent-Length: 10\r\n\r\nhello");
    REQUIRE(worker.wait_log("connection received"));
    worker.signal(SIGTERM);
    REQUIRE(worker.wait_log("stopping (SIGTERM)"));
    CHECK(!worker.wait_exit(0s));
    auto r = client.exchange("world");
    CHECK(r.status == 404);
    CHECK(r.header("Connection") == "close");
    CHECK(client.wait_closed());
    CHECK(worker.wait_exit() == 0);
}

TEST_CASE("a worker ignores SIGHUP")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    worker.signal(SIGHUP);
    auto client = worker.connect();
    auto r = client.exchange(doc_get);
    CHECK(r.status == 200);
    CHECK(!worker.wait_exit(0s));
}

TEST_CASE("a worker with a keys.json others can read exits 3 with one line naming the file and the fix")
{
    ForkedWorker worker([](Config& config, std::string const& dir) {
        REQUIRE(::mkdir(config.state_dir.c_str(), 0700) == 0);
        REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
        write_file(dir + "/keys.json", "{}", 0644);
    });
    CHECK(!worker.wait_ready());
    CHECK(worker.wait_exit() == 3);
    std::string log = worker.log();
    std::string path = worker.identity_dir() + "/keys.json";
    CHECK(log.find("cannot start") != std::string::npos);
    CHECK(log.find("chmod 600 " + path) != std::string::npos);
}

TEST_CASE("a worker whose inbox.db is newer than the code exits 3")
{
    ForkedWorker worker([](Config& config, std::string const& dir) {
        REQUIRE(::mkdir(config.state_dir.c_str(), 0700) == 0);
        REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open((dir + "/inbox.db").c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "PRAGMA user_version = 999", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    });
    CHECK(!worker.wait_ready());
    CHECK(worker.wait_exit() == 3);
    CHECK(worker.log().find(worker.identity_dir() + "/inbox.db") != std::string::npos);
}

TEST_CASE("a malformed channel message makes the worker exit 4")
{
    ForkedWorker worker;
    REQUIRE(worker.wait_ready());
    REQUIRE(::send(worker.channel(), "junk", 4, MSG_NOSIGNAL) == 4);
    CHECK(worker.wait_exit() == 4);
}

TEST_CASE_FIXTURE(ReadyWorker, "a second SIGTERM closes the connections still under way at once")
{
    client.send("POST /nope HTTP/1.1\r\nHost: arne.test\r\nContent-Length: 10\r\n\r\nhello");
    REQUIRE(worker.wait_log("connection received"));
    worker.signal(SIGTERM);
    REQUIRE(worker.wait_log("stopping (SIGTERM)"));
    worker.signal(SIGTERM);
    CHECK(client.wait_closed());
    CHECK(worker.wait_exit() == 0);
}

TEST_CASE("connections still busy after shutdown_timeout are closed and the worker exits 0")
{
    ForkedWorker worker([](Config& config, std::string const&) {
        config.shutdown_timeout = std::chrono::milliseconds(300);
    });
    REQUIRE(worker.wait_ready());
    auto client = worker.connect();
    client.send("POST /nope HTTP/1.1\r\nHost: arne.test\r\nContent-Length: 10\r\n\r\nhello");
    REQUIRE(worker.wait_log("connection received"));
    worker.signal(SIGTERM);
    CHECK(client.wait_closed());
    CHECK(worker.wait_exit() == 0);
    CHECK(worker.log().find("after shutdown_timeout") != std::string::npos);
}
