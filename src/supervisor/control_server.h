// ControlServer: the supervisor's control socket (config key control_socket),
// a Unix stream socket on which `posta-server status` asks for the daemon's
// state and `posta-server token` for an owner token. One request line, one
// answer line (control_request.h), then close. Served by the supervisor's
// loop without ever blocking it: an answer may come later (from a worker),
// and a client that leaves before it is simply not answered.
#pragma once

#include "common/lifetime.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <sys/types.h>
#include <uv.h>

namespace posta {

// Who is asking, from the socket (SO_PEERCRED), not from anything it says.
struct ControlPeer {
    pid_t pid = 0;
    uid_t uid = 0;
};

class ControlServer {
public:
    // Gives a request its answer line (without the newline); the first call
    // counts. Safe to call at any time, also after the client left or the
    // server died: the answer is then dropped. Answers are wiped from memory
    // once written, as some carry a credential.
    using Reply = std::function<void(std::string answer)>;
    // Answers each request (the line is valid only during the call): it must
    // call `reply` once, now or later (it bounds "later" itself).
    using Provider = std::function<void(std::string_view request, ControlPeer const& peer, Reply reply)>;

    // Binds `path` and starts listening; creates its folder 0755 if missing.
    // The path must be missing or a stale socket (connecting is refused),
    // which is replaced; a live socket or any other file is an error naming
    // it. The destructor removes the socket only if it is still the one
    // bound here. `provider` answers each request.
    static Result<std::unique_ptr<ControlServer>> create(uv_loop_t*, std::string path, Provider);
    ~ControlServer();
    ControlServer(ControlServer const&) = delete;
    ControlServer& operator=(ControlServer const&) = delete;

    std::string const& path() const { return m_path; }

private:
    struct Client;

    ControlServer(std::string path, Provider provider)
        : m_path(std::move(path))
        , m_provider(std::move(provider))
    {
    }

    // Each accepted connection (listen_on).
    static constexpr char const* role = "control socket";
    template<typename Server, typename Handle> friend Result<UvHandle<Handle>> listen_on(uv_loop_t*, UniqueFd&, int, Server*, std::string const&);
    void on_connection();
    void ask(Client&, std::string_view request) noexcept;

    std::string m_path;
    Provider m_provider;
    UvHandle<uv_pipe_t> m_server;
    std::set<Client*> m_clients;   // open ones, closed with the server
    dev_t m_bound_dev = 0;          // the socket file bound, to unlink only it
    ino_t m_bound_ino = 0;
};

}
