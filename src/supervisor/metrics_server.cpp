#include "metrics_server.h"

#include "common/callback_guard.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "common/uv_handle.h"
#include "common/uv_listen.h"
#include "supervisor/exposition.h"

#include <llhttp.h>

#include <cstring>
#include <sys/socket.h>

namespace posta {

namespace {

// A scraper's request is one short head; anything longer is not one.
constexpr size_t max_head_bytes = 8192;
// A connection that has not sent its head by then, or not taken its answer
// and closed by then, is closed.
constexpr uint64_t client_timeout_ms = 10'000;
// Scrapers are few: connections beyond this many open ones are closed at
// once, so that a flood costs the supervisor no more than this.
constexpr size_t max_clients = 32;

std::string response(int status, char const* reason, std::string_view content_type, std::string_view body,
    char const* extra_header = nullptr, bool head_only = false)
{
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
    out += "Content-Type: ";
    out.append(content_type);
    out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    if (extra_header)
        out.append(extra_header).append("\r\n");
    out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
    if (!head_only)
        out.append(body);
    return out;
}

std::string error_response(int status, char const* reason, char const* code, char const* message,
    char const* extra_header = nullptr)
{
    std::string body = std::string("{\"error\":\"") + code + "\",\"message\":\"" + message + "\"}";
    return response(status, reason, "application/json", body, extra_header);
}

}

// One connection: its socket, its deadline timer, the head parsed so far
// and the answer being written. Freed when both handles have closed.
struct MetricsServer::Client {
    uv_tcp_t tcp {};
    uv_timer_t timer {};
    uv_write_t write {};
    uv_shutdown_t shutdown {};
    llhttp_t parser {};
    MetricsServer* server = nullptr;
    size_t consumed = 0;
    std::string url;
    bool head_done = false;
    bool answered = false;
    std::string answer;
    int open_handles = 2;

    void close()
    {
        if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp)))
            return;
        if (server)
            server->m_clients.erase(this);
        server = nullptr;
        auto closed = [](uv_handle_t* h) noexcept {
            auto* self = static_cast<Client*>(h->data);
            if (--self->open_handles == 0)
                delete self;
        };
        uv_close(reinterpret_cast<uv_handle_t*>(&timer), closed);
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp), closed);
    }

    static int on_url(llhttp_t* parser, char const* at, size_t length) noexcept
    {
        auto* self = static_cast<Client*>(parser->data);
        self->url.append(at, length); // bounded by max_head_bytes
        return 0;
    }
    static int on_headers_complete(llhttp_t* parser) noexcept
    {
        static_cast<Client*>(parser->data)->head_done = true;
        return HPE_PAUSED; // a body, if any, is not ours to read
    }

    void feed(char const* bytes, size_t length);
    void respond(std::string bytes);
};

void MetricsServer::Client::feed(char const* bytes, size_t length)
{
    size_t room = max_head_bytes - consumed;
    bool too_large = length >= room;
    llhttp_errno_t err = llhttp_execute(&parser, bytes, too_large ? room : length);
    consumed += too_large ? room : length;
    if (err == HPE_PAUSED && head_done) {
        auto method = static_cast<llhttp_method_t>(parser.method);
        std::string_view path = std::string_view(url).substr(0, url.find('?'));
        if (path != "/metrics") {
            respond(error_response(404, "Not Found", "not_found", "only /metrics is served here"));
        } else if (method != HTTP_GET && method != HTTP_HEAD) {
            respond(error_response(405, "Method Not Allowed", "method_not_allowed", "use GET",
                "Allow: GET, HEAD"));
        } else {
            std::string body;
            // The provider is ours; should it throw, the scraper gets a 500.
            bool written = false;
            guard_callback("metrics", [&] {
                body = server->m_provider();
                written = true;
            });
            if (written)
                respond(response(200, "OK", Exposition::content_type, body, nullptr, method == HTTP_HEAD));
            else
                respond(error_response(500, "Internal Server Error", "internal_error", "the metrics failed"));
        }
        return;
    }
    if (err != HPE_OK) {
        respond(error_response(400, "Bad Request", "bad_request", "the request head is malformed"));
        return;
    }
    if (too_large)
        respond(error_response(431, "Request Header Fields Too Large", "head_too_large",
            "the request head is too large"));
}

void MetricsServer::Client::respond(std::string bytes)
{
    answered = true;
    answer = std::move(bytes);
    uv_buf_t out = uv_buf_init(answer.data(), static_cast<unsigned>(answer.size()));
    int rc = uv_write(&write, reinterpret_cast<uv_stream_t*>(&tcp), &out, 1, [](uv_write_t* req, int status) noexcept {
        auto* self = static_cast<Client*>(req->handle->data);
        if (status < 0) {
            self->close();
            return;
        }
        // Half-close, then wait for the client's end (reading and dropping
        // what it sends) until the deadline: closing with its bytes unread
        // would reset the connection and could destroy the answer.
        if (uv_shutdown(&self->shutdown, req->handle, [](uv_shutdown_t*, int) noexcept {}) < 0)
            self->close();
    });
    if (rc < 0)
        close();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::create(uv_loop_t* loop, SocketAddress const& address,
    Provider provider)
{
    std::string text = format_address(address.get(), address.length);
    UniqueFd fd(::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd)
        return Error::from_errno("socket", "metrics_listen " + text);
    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        return Error::from_errno("setsockopt SO_REUSEADDR", "metrics_listen " + text);
    if (::bind(fd.get(), address.get(), address.length) < 0)
        return Error::from_errno("bind", "metrics_listen " + text);
    if (::listen(fd.get(), 64) < 0)
        return Error::from_errno("listen", "metrics_listen " + text);
    SocketAddress bound;
    bound.length = sizeof bound.storage;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound.storage), &bound.length) < 0)
        return Error::from_errno("getsockname", "metrics_listen " + text);

    std::unique_ptr<MetricsServer> self(
        new MetricsServer(format_address(bound.get(), bound.length), std::move(provider)));
    auto listening = listen_on<MetricsServer, uv_tcp_t>(loop, fd, 64, self.get(), "metrics_listen " + text);
    if (!listening)
        return listening.error();
    self->m_server = std::move(listening.value());
    return self;
}

MetricsServer::~MetricsServer()
{
    while (!m_clients.empty())
        (*m_clients.begin())->close();
    m_server.close();
}

void MetricsServer::on_connection()
{
    static llhttp_settings_t const settings = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_url = &Client::on_url;
        s.on_headers_complete = &Client::on_headers_complete;
        return s;
    }();
    auto* client = new Client {};
    client->server = this;
    m_clients.insert(client);
    uv_tcp_init(m_server.get()->loop, &client->tcp);
    uv_timer_init(m_server.get()->loop, &client->timer);
    client->tcp.data = client;
    client->timer.data = client;
    llhttp_init(&client->parser, HTTP_REQUEST, &settings);
    client->parser.data = client;
    if (uv_accept(reinterpret_cast<uv_stream_t*>(m_server.get()), reinterpret_cast<uv_stream_t*>(&client->tcp)) < 0
        || m_clients.size() > max_clients) {
        client->close();
        return;
    }
    uv_timer_start(&client->timer, [](uv_timer_t* timer) noexcept {
        static_cast<Client*>(timer->data)->close();
    }, client_timeout_ms, 0);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&client->tcp),
        [](uv_handle_t*, size_t, uv_buf_t* buf) noexcept {
            static char slab[4096];
            *buf = uv_buf_init(slab, sizeof slab);
        },
        [](uv_stream_t* stream, ssize_t nread, uv_buf_t const* buf) noexcept {
            auto* c = static_cast<Client*>(stream->data);
            if (nread < 0 || !c->server) {
                c->close(); // the client closed (or failed): done
                return;
            }
            if (nread == 0 || c->answered)
                return; // what follows an answered head is dropped
            guard_callback("metrics", [&] { c->feed(buf->base, static_cast<size_t>(nread)); });
        });
}

}
