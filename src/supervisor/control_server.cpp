#include "control_server.h"

#include "common/callback_guard.h"
#include "common/log.h"
#include "common/uv_handle.h"
#include "common/uv_listen.h"
#include "common/unique_fd.h"
#include "common/unix_socket.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace posta {

namespace {

// A request is one short line; anything longer is not a client of ours.
constexpr size_t max_request = 256;

// The path must be free: missing, or a socket nobody listens on any more
// (left by a kill -9), which is removed. A live socket is another daemon's;
// anything else is the operator's file. Both are left alone.
Result<void> claim_path(std::string const& path)
{
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) {
        if (errno == ENOENT)
            return {};
        return Error::from_errno("control_socket", path);
    }
    if (!S_ISSOCK(st.st_mode))
        return Error::message("control_socket", "exists and is not a socket; remove it or set control_socket to another path", path);
    auto probe = connect_unix(path);
    if (probe)
        return Error::message("control_socket", "another posta-server is listening there; stop it, or give this daemon its own control_socket", path);
    if (!probe.error().is(ErrorDomain::Errno, ECONNREFUSED))
        return probe.error();
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        return Error::from_errno("unlink", path);
    return {};
}

}

// One connected client: its pipe, its credentials, the request read so far,
// the answer being written. Freed in the pipe's close callback, never
// earlier; a Reply holds a guard of its lifetime, which ends when it starts
// closing.
struct ControlServer::Client {
    uv_pipe_t pipe {};
    uv_write_t write {};
    ControlServer* server = nullptr;
    ControlPeer peer;
    std::string request;
    std::string answer;
    bool asked = false;    // the request line is complete and was handed on
    bool answered = false; // an answer is being written
    Lifetime lifetime;

    void close()
    {
        auto* handle = reinterpret_cast<uv_handle_t*>(&pipe);
        if (uv_is_closing(handle))
            return;
        lifetime.end();
        if (server)
            server->m_clients.erase(this);
        server = nullptr;
        uv_close(handle, [](uv_handle_t* h) noexcept {
            auto* client = static_cast<Client*>(h->data);
            ::explicit_bzero(client->answer.data(), client->answer.size());
            delete client;
        });
    }

    void send(std::string text)
    {
        if (answered)
            return;
        answered = true;
        answer = std::move(text);
        answer += '\n';
        uv_buf_t out = uv_buf_init(answer.data(), static_cast<unsigned>(answer.size()));
        int rc = uv_write(&write, reinterpret_cast<uv_stream_t*>(&pipe), &out, 1, [](uv_write_t* req, int) noexcept {
            static_cast<Client*>(req->handle->data)->close();
        });
        if (rc < 0)
            close();
    }
};

Result<std::unique_ptr<ControlServer>> ControlServer::create(uv_loop_t* loop, std::string path, Provider provider)
{
    std::error_code ec;
    auto folder = std::filesystem::path(path).parent_path();
    if (!folder.empty() && !std::filesystem::exists(folder, ec)) {
        std::filesystem::create_directories(folder, ec);
        if (ec)
            return Error { ErrorDomain::Errno, ec.value(), "mkdir", ec.message(), folder.string() };
        ::chmod(folder.c_str(), 0755);
    }
    if (auto free = claim_path(path); !free)
        return free.error();

    // Bound here rather than by uv_pipe_bind: libuv unlinks the path of a pipe
    // it bound when the handle closes, whatever is at that path by then.
    auto addr = unix_socket_address(path);
    if (!addr)
        return addr.error();
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd)
        return Error::from_errno("socket", path);
    if (::bind(fd.get(), reinterpret_cast<sockaddr const*>(&addr.value()), sizeof addr.value()) < 0)
        return Error::from_errno("bind", path);

    std::unique_ptr<ControlServer> self(new ControlServer(std::move(path), std::move(provider)));
    struct stat bound {};
    if (::lstat(self->m_path.c_str(), &bound) == 0) {
        self->m_bound_dev = bound.st_dev;
        self->m_bound_ino = bound.st_ino;
    }
    auto listening = listen_on<ControlServer, uv_pipe_t>(loop, fd, 16, self.get(), self->m_path);
    if (!listening)
        return listening.error();
    self->m_server = std::move(listening.value());
    // Status is not secret, but only the operator should be asking.
    ::chmod(self->m_path.c_str(), 0600);
    return self;
}

ControlServer::~ControlServer()
{
    while (!m_clients.empty())
        (*m_clients.begin())->close();
    m_server.close();
    // Only the socket this server bound (also when listening on it failed):
    // whatever replaced it since belongs to someone else.
    struct stat st {};
    if (m_bound_ino != 0 && ::lstat(m_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == m_bound_dev
        && st.st_ino == m_bound_ino)
        ::unlink(m_path.c_str());
}

void ControlServer::ask(Client& client, std::string_view request) noexcept
{
    Reply reply = [&client, guard = client.lifetime.guard()](std::string answer) {
        if (guard)
            client.send(std::move(answer));
        ::explicit_bzero(answer.data(), answer.size());
    };
    // The caller is a libuv callback: whatever the provider throws ends here
    // as one log line and an error answer.
    bool completed = false;
    guard_callback("control socket", [&] {
        m_provider(request, client.peer, reply);
        completed = true;
    });
    if (!completed)
        reply("{\"error\":\"internal error\"}");
}

void ControlServer::on_connection()
{
    auto* client = new Client {};
    client->server = this;
    m_clients.insert(client);
    uv_pipe_init(m_server.get()->loop, &client->pipe, 0);
    client->pipe.data = client;
    if (uv_accept(reinterpret_cast<uv_stream_t*>(m_server.get()), reinterpret_cast<uv_stream_t*>(&client->pipe)) < 0) {
        client->close();
        return;
    }
    uv_os_fd_t fd = -1;
    ucred cred {};
    socklen_t cred_len = sizeof cred;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&client->pipe), &fd) < 0
        || ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0) {
        log::warn("control socket: cannot read a client's credentials: %s", std::strerror(errno));
        client->close();
        return;
    }
    client->peer = ControlPeer { cred.pid, cred.uid };
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&client->pipe),
        [](uv_handle_t*, size_t, uv_buf_t* buf) noexcept {
            static char slab[max_request];
            *buf = uv_buf_init(slab, sizeof slab);
        },
        [](uv_stream_t* stream, ssize_t nread, uv_buf_t const* buf) noexcept {
            guard_callback("control socket", [&] {
                auto* c = static_cast<Client*>(stream->data);
                // The client left (or shut its end) before its answer: it
                // withdrew what it asked, and an answer coming later finds
                // nobody. One being written is finished first.
                if (nread < 0 || !c->server) {
                    if (c->answered && c->server)
                        uv_read_stop(stream);
                    else
                        c->close();
                    return;
                }
                // Reading goes on while the answer is made, to notice a
                // client that leaves; what it sends meanwhile is ignored.
                if (c->asked)
                    return;
                c->request.append(buf->base, static_cast<size_t>(nread));
                auto newline = c->request.find('\n');
                if (newline == std::string::npos) {
                    if (c->request.size() > max_request)
                        c->close();
                    return;
                }
                c->asked = true;
                c->request.resize(newline);
                c->server->ask(*c, c->request);
            });
        });
}

}
