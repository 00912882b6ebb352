// WorkerProcess, the supervisor's view of one identity's worker, driven on a
// private loop as the supervisor drives it: a real worker template
// ($POSTA_SERVER) forks a real worker, the test reaps it and hands
// WorkerProcess the status. Checked: the bound on connections passed but not
// taken (max_pending), what waits past it and for how long, what is refused
// at once, a first start, and the restarts after a crash and after a worker
// that never got ready.
#include "supervisor/worker_process.h"
#include "support/test_loop.h"
#include "support/test_support.h"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <functional>
#include <optional>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace posta;
using namespace posta::test;

namespace {

std::string const doc_get = "GET /.well-known/posta HTTP/1.1\r\nHost: arne.test:8080\r\n\r\n";

// One WorkerProcess for arne on its own loop and template. `prepare` may
// put files in the identity's folder before anything starts.
class Supervised {
public:
    explicit Supervised(size_t max_pending, std::function<void(std::string const& identity_dir)> prepare = {})
    {
        Config config;
        config.state_dir = m_tmp.path() + "/state";
        config.head_timeout = std::chrono::seconds(10); // how long connections wait for a first start
        config.shutdown_timeout = std::chrono::seconds(5);
        config.max_pending = max_pending;
        if (prepare)
            prepare(config.state_dir + "/arne");
        IdentityEntry identity;
        identity.slug = "arne";
        identity.url = "http://arne.test:8080";
        identity.name = "Arne";
        identity.host_key = "arne.test";

        char const* exe = std::getenv("POSTA_SERVER");
        REQUIRE_MESSAGE(exe, "POSTA_SERVER must name the posta-server binary (meson test sets it)");
        // Like the supervisor, the test adopts the workers its template forks.
        REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
        m_log_path = m_tmp.path() + "/worker.log";
        m_log.reset(::open(m_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
        REQUIRE(m_log.valid());
        m_template.emplace(m_loop.get(), exe, m_log.get());
        Policy policy;
        policy.take_config(config);
        m_worker.emplace(m_loop.get(), *m_template, identity, config, policy, [](WorkerProcess&) {});
    }

    ~Supervised()
    {
        if (m_worker->pid() > 0)
            ::kill(m_worker->pid(), SIGCONT); // a stopped worker cannot act on SIGTERM
        m_worker->stop();
        CHECK(run_until([&] { return m_worker->state() == WorkerProcess::State::Exited; }, std::chrono::seconds(10)));
        // Sanitizer reports of the workers go to their log, not to the test's output.
        std::string text = read_file(m_log_path);
        CHECK_MESSAGE(text.find("Sanitizer") == std::string::npos, text);
        CHECK_MESSAGE(text.find("runtime error") == std::string::npos, text);
        m_worker.reset();
        pid_t forker = m_template->pid();
        m_template.reset(); // its channel closes: it exits
        if (forker > 0)
            ::waitpid(forker, nullptr, 0);
    }

    WorkerProcess& worker() { return *m_worker; }

    // Turns the loop, reaping as the supervisor's SIGCHLD handler does,
    // until `done` holds or `limit` passes.
    template<typename Predicate>
    bool run_until(Predicate done, std::chrono::milliseconds limit = std::chrono::seconds(5))
    {
        return m_loop.run_until([&] {
            reap();
            return done();
        }, limit);
    }

    // Routes a new plain connection to the worker, as the supervisor does
    // once it knows its Host (no prefix read); the client's end.
    HttpClient pass()
    {
        TcpPair pair = make_tcp_pair();
        SocketAddress peer;
        std::memcpy(&peer.storage, &pair.client_address, pair.client_address_len);
        peer.length = pair.client_address_len;
        m_worker->pass(std::move(pair.server), peer, "", ConnectionKind::Plain);
        return HttpClient(std::move(pair.client));
    }

private:
    void reap()
    {
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            if (m_template && m_template->on_reaped(pid))
                continue;
            if (m_worker && pid == m_worker->pid())
                m_worker->on_reaped(status);
        }
    }

    TestLoop m_loop; // first: outlives the handles of everything below
    TempDir m_tmp;
    std::string m_log_path;
    UniqueFd m_log;
    std::optional<TemplateProcess> m_template;
    std::optional<WorkerProcess> m_worker;
};

// True once `pid` is stopped (by SIGSTOP), per /proc/PID/stat, within 5 s.
bool wait_stopped(pid_t pid)
{
    auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
        std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
        auto close = stat.rfind(')');
        if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'T')
            return true;
        ::poll(nullptr, 0, 10);
    }
    return false;
}

// The status of the response `client` gets without asking (the
// supervisor's own answers), 0 for none.
int status_of(HttpClient& client)
{
    auto response = client.read_response();
    return response ? response->status : 0;
}

}

TEST_CASE("a ready worker is passed max_pending connections it has not taken; the next wait up to a second, "
          "16 times as many at most, and one more gets 503 at once")
{
    Supervised s(2);
    s.worker().start();
    REQUIRE(s.run_until([&] { return s.worker().state() == WorkerProcess::State::Ready; }, 10s));
    pid_t pid = s.worker().pid();
    // A hung worker: it takes nothing off its channel.
    REQUIRE(::kill(pid, SIGSTOP) == 0);
    REQUIRE(wait_stopped(pid));

    std::vector<HttpClient> passed;
    for (int i = 0; i < 2; ++i)
        passed.push_back(s.pass());
    std::vector<HttpClient> waiting;
    for (int i = 0; i < 2 * 16; ++i)
        waiting.push_back(s.pass());
    CHECK(s.worker().pending() == 2 + 32);
    auto last_waiting = Clock::now();
    HttpClient refused = s.pass();
    CHECK(s.worker().pending() == 2 + 32);
    CHECK(status_of(refused) == 503);

    // Those waiting get 503 once they have waited a second; the two passed
    // are the worker's and stay pending.
    REQUIRE(s.run_until([&] { return s.worker().pending() == 2; }));
    CHECK(Clock::now() - last_waiting >= 900ms);
    for (auto& client : waiting)
        CHECK(status_of(client) == 503);

    // Woken, the worker serves both and credits them back; the bound is free again.
    REQUIRE(::kill(pid, SIGCONT) == 0);
    for (auto& client : passed)
        CHECK(client.exchange(doc_get).status == 200);
    REQUIRE(s.run_until([&] { return s.worker().pending() == 0; }));
    HttpClient after = s.pass();
    CHECK(after.exchange(doc_get).status == 200);
    CHECK(s.worker().pid() == pid);
}

TEST_CASE("connections routed during a worker's first start wait for it and are served once it is ready")
{
    Supervised s(2);
    s.worker().start();
    std::vector<HttpClient> early;
    for (int i = 0; i < 3; ++i)
        early.push_back(s.pass());
    CHECK(s.worker().state() == WorkerProcess::State::Starting);
    CHECK(s.worker().pending() == 3);
    // Two are passed when it is ready, the third once it takes one of them.
    REQUIRE(s.run_until([&] { return s.worker().state() == WorkerProcess::State::Ready; }, 10s));
    for (auto& client : early)
        client.send(doc_get);
    REQUIRE(s.run_until([&] { return s.worker().pending() == 0; }));
    for (auto& client : early)
        CHECK(status_of(client) == 200);
}

TEST_CASE("a worker killed after it was ready is started again at once; until it is ready its connections get 503")
{
    Supervised s(2);
    s.worker().start();
    REQUIRE(s.run_until([&] { return s.worker().state() == WorkerProcess::State::Ready; }, 10s));
    pid_t first = s.worker().pid();
    REQUIRE(::kill(first, SIGKILL) == 0);
    REQUIRE(s.run_until([&] { return s.worker().restarts() == 1; }));
    CHECK(s.worker().state() == WorkerProcess::State::Starting);
    HttpClient meanwhile = s.pass();
    CHECK(s.worker().pending() == 0);
    CHECK(status_of(meanwhile) == 503);

    REQUIRE(s.run_until([&] { return s.worker().state() == WorkerProcess::State::Ready; }, 10s));
    CHECK(s.worker().pid() != first);
    HttpClient after = s.pass();
    CHECK(after.exchange(doc_get).status == 200);
}

TEST_CASE("a worker that ends before it is ready is started again after 1 s, then 2 s; its connections get 503")
{
    Supervised s(2, [](std::string const& dir) {
        std::string state_dir = dir.substr(0, dir.rfind('/'));
        REQUIRE(::mkdir(state_dir.c_str(), 0700) == 0);
        REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
        write_file(dir + "/keys.json", "not json", 0600);
    });
    s.worker().start();
    // What waits for the first start is refused when the worker ends.
    HttpClient early = s.pass();
    CHECK(s.worker().pending() == 1);
    REQUIRE(s.run_until([&] { return s.worker().restarts() == 1; }, 10s));
    auto first_exit = Clock::now();
    CHECK(s.worker().state() == WorkerProcess::State::Backoff);
    CHECK(s.worker().pending() == 0);
    CHECK(status_of(early) == 503);
    HttpClient in_backoff = s.pass();
    CHECK(status_of(in_backoff) == 503);

    REQUIRE(s.run_until([&] { return s.worker().restarts() == 2; }, 10s));
    auto second_exit = Clock::now();
    CHECK(second_exit - first_exit >= 900ms);
    REQUIRE(s.run_until([&] { return s.worker().restarts() == 3; }, 10s));
    CHECK(Clock::now() - second_exit >= 1900ms);
    CHECK(s.worker().state() == WorkerProcess::State::Backoff);
}
