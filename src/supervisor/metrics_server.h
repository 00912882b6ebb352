// MetricsServer: the supervisor's metrics endpoint (config key
// metrics_listen), a TCP listener of its own on which `GET /metrics` is
// answered with the Prometheus text the provider writes
// (exposition.h). One request per connection: its head is parsed with
// llhttp within a bound and a deadline, answered (404 for another path, 405
// for another method), and the connection closed. Served by the
// supervisor's loop without ever blocking it; it never reads a body and
// never routes anything to a worker.
#pragma once

#include "common/address.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <uv.h>

namespace posta {

class MetricsServer {
public:
    // Writes the body of a 200: the metrics text.
    using Provider = std::function<std::string()>;

    // Binds `address` and starts listening. The provider answers each scrape.
    static Result<std::unique_ptr<MetricsServer>> create(uv_loop_t*, SocketAddress const& address, Provider);
    ~MetricsServer();
    MetricsServer(MetricsServer const&) = delete;
    MetricsServer& operator=(MetricsServer const&) = delete;

    // The bound address ("127.0.0.1:9187"), with the real port when 0 was asked.
    std::string const& name() const { return m_name; }

private:
    struct Client;

    MetricsServer(std::string name, Provider provider)
        : m_name(std::move(name))
        , m_provider(std::move(provider))
    {
    }

    // Each accepted connection (listen_on).
    static constexpr char const* role = "metrics";
    template<typename Server, typename Handle> friend Result<UvHandle<Handle>> listen_on(uv_loop_t*, UniqueFd&, int, Server*, std::string const&);
    void on_connection();

    std::string m_name;
    Provider m_provider;
    UvHandle<uv_tcp_t> m_server;
    std::set<Client*> m_clients;  // open ones, closed with the server
};

}
