// ControlServer: the supervisor's control socket (config key control_socket),
// a Unix stream socket on which `posta-server status` asks for the daemon's
// state. One request line ("status"), one JSON answer, then close. Served by
// the supervisor's loop without ever blocking it.
#pragma once

#include "common/result.h"

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <sys/types.h>
#include <uv.h>

namespace posta {

class ControlServer {
public:
    using Provider = std::function<std::string(std::string_view request)>;

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

    void on_connection();
    std::string answer(std::string_view request) noexcept;

    std::string m_path;
    Provider m_provider;
    uv_pipe_t* m_server = nullptr; // freed in its close callback
    std::set<Client*> m_clients;   // open ones, closed with the server
    dev_t m_bound_dev = 0;          // the socket file bound, to unlink only it
    ino_t m_bound_ino = 0;
};

}
