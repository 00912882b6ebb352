// How curl and libuv meet (the pattern of curl's docs/examples/multi-uv.c):
// curl tells us through CURLMOPT_SOCKETFUNCTION which sockets to watch for
// what, and through CURLMOPT_TIMERFUNCTION when it next wants to be called
// with no socket event; we watch each socket with a uv_poll_t and keep one
// uv_timer_t, and hand every event back with curl_multi_socket_action().
// Finished transfers are read with curl_multi_info_read() right after.
//
// Three rules keep this re-entrancy-safe:
// - curl's callbacks only update our watches and timer; they never drive
//   curl (curl forbids it; curl_multi_assign is the one call it allows
//   there) and never run a user callback.
// - A user callback runs only from m_deliver_timer, outside every curl call,
//   so it may start, cancel, close or destroy the client.
// - Every poll handle is closed the moment curl says CURL_POLL_REMOVE, which
//   curl does before it closes the socket, so a reused fd number always gets
//   a fresh watch.
//
// Name resolution runs in curl's threaded resolver (Debian's libcurl has
// AsynchDNS; init_global() checks). CURLOPT_QUICK_EXIT keeps a cancel or a
// timeout during a lookup from waiting for getaddrinfo() to return: the
// resolver thread is detached and frees itself when the lookup ends.
#include "http_client.h"

#include "common/log.h"
#include "http/http_transfer.h"

#include <curl/curl.h>

namespace posta {

struct HttpClient::Watch {
    HttpClient* owner;
    int fd;
    UvHandle<uv_poll_t> poll; // data points at this Watch
    int events = 0;           // UV_READABLE | UV_WRITABLE, as curl last asked
};

// The C callbacks of curl and libuv. Each finds its owner through the
// pointer it was registered with and calls one member.
struct HttpClientTrampolines {
    static int on_socket(CURL*, curl_socket_t fd, int what, void* client, void* socketp) noexcept
    {
        return static_cast<HttpClient*>(client)->on_socket(fd, what, static_cast<HttpClient::Watch*>(socketp));
    }

    static int on_timer(CURLM*, long timeout_ms, void* client) noexcept
    {
        static_cast<HttpClient*>(client)->on_timeout_changed(timeout_ms);
        return 0;
    }

    static void on_poll(uv_poll_t* handle, int status, int events) noexcept
    {
        auto* watch = static_cast<HttpClient::Watch*>(handle->data);
        if (!watch)
            return;
        int flags = 0;
        if (status < 0) {
            // libuv saw POLLERR (a reset, say), stopped the handle and calls
            // this UV_EBADF. Not CURL_CSELECT_ERR: curl would fail the
            // transfer at once, though a complete answer may still wait in
            // the receive buffer, or a reused connection may just need a
            // fresh one. No flags makes curl check the socket itself and meet
            // the real error (or the data) through recv. curl only reports
            // changes, so the handle is restarted here.
            uv_poll_start(handle, watch->events, &on_poll);
        } else {
            if (events & UV_READABLE)
                flags |= CURL_CSELECT_IN;
            if (events & UV_WRITABLE)
                flags |= CURL_CSELECT_OUT;
        }
        // drive() may close this very watch; it is not touched afterwards.
        watch->owner->drive(watch->fd, flags);
    }

    static void on_curl_timer(uv_timer_t* timer) noexcept
    {
        if (auto* client = static_cast<HttpClient*>(timer->data))
            client->drive(CURL_SOCKET_TIMEOUT, 0);
    }

    static void on_deliver_timer(uv_timer_t* timer) noexcept
    {
        if (auto* client = static_cast<HttpClient*>(timer->data))
            client->deliver();
    }

};

void HttpClient::MultiDeleter::operator()(void* multi) const noexcept
{
    curl_multi_cleanup(static_cast<CURLM*>(multi));
}

HttpClientError http_client_error(Error const& error)
{
    return error.code_as<HttpClientError>().value_or(HttpClientError::Internal);
}

char const* http_client_error_name(HttpClientError kind)
{
    switch (kind) {
    case HttpClientError::Connect:
        return "connect";
    case HttpClientError::Timeout:
        return "timeout";
    case HttpClientError::TooLarge:
        return "too_large";
    case HttpClientError::Tls:
        return "tls";
    case HttpClientError::Protocol:
        return "protocol";
    case HttpClientError::Invalid:
        return "invalid";
    case HttpClientError::Cancelled:
        return "cancelled";
    case HttpClientError::Internal:
        return "internal";
    case HttpClientError::Refused:
        return "refused";
    }
    return "?";
}

Result<void> HttpClient::init_global()
{
    // curl_global_init is not reference-counted by us: once per process.
    static CURLcode const rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return Error { ErrorDomain::Curl, rc, "curl_global_init", curl_easy_strerror(rc) };

    curl_version_info_data const* info = curl_version_info(CURLVERSION_NOW);
    // CURLOPT_QUICK_EXIT and CURLOPT_PROTOCOLS_STR came with 7.87.0 and 7.85.0.
    if (info->version_num < 0x075700)
        return Error::message("libcurl", std::string("version ") + info->version + " is too old; posta-server needs 7.87.0 or later");
    if (!(info->features & CURL_VERSION_ASYNCHDNS))
        return Error::message("libcurl", "built without an asynchronous resolver, so name lookups would block the worker; use a libcurl with the threaded resolver or c-ares (Debian's has one)");
    if (!(info->features & CURL_VERSION_SSL))
        return Error::message("libcurl", "built without TLS; https deliveries need it (Debian's libcurl4 is built with OpenSSL)");
    return {};
}

Result<std::unique_ptr<HttpClient>> HttpClient::create(uv_loop_t* loop, std::string_view version)
{
    if (auto ready = init_global(); !ready)
        return ready.error();
    // The multi handle comes with the first request (start): most workers
    // send nothing for a long while, and making it is a tenth of a start.
    return std::unique_ptr<HttpClient>(new HttpClient(loop, "posta-server/" + std::string(version)));
}

HttpClient::HttpClient(uv_loop_t* loop, std::string user_agent)
    : m_loop(loop)
    , m_user_agent(std::move(user_agent))
{
    m_curl_timer = make_timer(loop, this);
    m_deliver_timer = make_timer(loop, this);
}

HttpClient::~HttpClient()
{
    for (auto& [id, transfer] : m_transfers) {
        if (transfer->in_multi)
            curl_multi_remove_handle(m_multi.get(), transfer->easy.get());
    }
    m_transfers.clear();
    close_multi();
    m_completions.clear();
    // m_curl_timer and m_deliver_timer close themselves; the loop frees them.
}

Result<void> HttpClient::open_multi()
{
    CURLM* multi = curl_multi_init();
    if (!multi)
        return Error::message("curl_multi_init", "out of memory");
    m_multi.reset(multi);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &HttpClientTrampolines::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &HttpClientTrampolines::on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
    return {};
}

// Every transfer must have left the multi handle before this.
void HttpClient::close_multi()
{
    if (!m_multi)
        return;
    // Stop listening to curl, then close our poll handles (which takes each
    // fd out of epoll at once) before curl closes its cached connections'
    // sockets in curl_multi_cleanup.
    curl_multi_setopt(m_multi.get(), CURLMOPT_SOCKETFUNCTION, static_cast<curl_socket_callback>(nullptr));
    curl_multi_setopt(m_multi.get(), CURLMOPT_TIMERFUNCTION, static_cast<curl_multi_timer_callback>(nullptr));
    m_watches.clear();
    if (m_curl_timer)
        uv_timer_stop(m_curl_timer.get());
    m_multi.reset();
}

HttpRequestId HttpClient::start(HttpClientRequest request, Callback callback)
{
    HttpRequestId id = m_next_id++;
    std::string const& url = request.url;
    if (m_closed) {
        defer(id, url, std::move(callback), http_error(HttpClientError::Cancelled, "the client is closed", url));
        return id;
    }
    if (!m_multi) {
        // The first request, or a failure of the multi handle dropped it.
        if (auto opened = open_multi(); !opened) {
            defer(id, url, std::move(callback), http_error(HttpClientError::Internal, opened.error().text(), url));
            return id;
        }
    }

    auto transfer = std::make_unique<HttpTransfer>();
    transfer->id = id;
    transfer->connect_hook = &m_connect_hook;
    transfer->request = std::move(request);
    transfer->callback = std::move(callback);
    if (auto prepared = transfer->prepare(m_user_agent, m_trust_anchors); !prepared) {
        defer(id, transfer->request.url, std::move(transfer->callback), prepared.error());
        return id;
    }

    HttpTransfer& t = *transfer;
    m_transfers.emplace(id, std::move(transfer));
    // Calls on_timer (to be driven soon), never a socket or user callback.
    if (CURLMcode rc = curl_multi_add_handle(m_multi.get(), t.easy.get()); rc != CURLM_OK) {
        Error error = http_error(HttpClientError::Internal, curl_multi_strerror(rc), t.request.url);
        finish(id, std::move(error));
        return id;
    }
    t.in_multi = true;
    return id;
}

void HttpClient::cancel(HttpRequestId id)
{
    if (auto it = m_transfers.find(id); it != m_transfers.end()) {
        Error error = http_error(HttpClientError::Cancelled, "cancelled", it->second->request.url);
        finish(id, std::move(error));
        return;
    }
    for (auto& completion : m_completions) {
        if (completion.id == id) {
            completion.result = http_error(HttpClientError::Cancelled, "cancelled", completion.url);
            return;
        }
    }
}

void HttpClient::close()
{
    m_closed = true;
    std::vector<HttpRequestId> ids;
    for (auto const& [id, transfer] : m_transfers)
        ids.push_back(id);
    for (HttpRequestId id : ids)
        cancel(id);
    for (auto& completion : m_completions)
        completion.result = http_error(HttpClientError::Cancelled, "cancelled", completion.url);
    close_multi();
}

// Hands one socket event (or curl's timeout) to curl, then collects what
// finished. Never calls a user callback.
void HttpClient::drive(int fd, int curl_events)
{
    if (!m_multi)
        return;
    int running = 0;
    CURLMcode rc = curl_multi_socket_action(m_multi.get(), fd, curl_events, &running);
    collect_done();
    // BAD_SOCKET: an event for a socket curl already forgot; harmless.
    if (rc == CURLM_OK || rc == CURLM_BAD_SOCKET)
        return;
    // A socket could not be watched (curl then marks the multi handle dead)
    // or curl ran out of memory: fail what is in flight, start afresh.
    log::warn("http client: curl_multi_socket_action: %s; failing %zu request(s)", curl_multi_strerror(rc), m_transfers.size());
    fail_all(HttpClientError::Internal, std::string("curl_multi_socket_action: ") + curl_multi_strerror(rc));
    close_multi();
}

void HttpClient::collect_done()
{
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(m_multi.get(), &queued)) {
        if (message->msg != CURLMSG_DONE)
            continue;
        // The message dies with curl_multi_remove_handle: read it first.
        CURL* easy = message->easy_handle;
        CURLcode code = message->data.result;
        char* priv = nullptr;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        auto& t = *reinterpret_cast<HttpTransfer*>(priv);
        finish(t.id, t.outcome(code));
    }
}

// The request's outcome is decided: its transfer leaves curl and is freed,
// and its callback is queued for the next loop turn.
void HttpClient::finish(HttpRequestId id, Result<HttpClientResponse> result)
{
    auto it = m_transfers.find(id);
    if (it == m_transfers.end())
        return;
    std::unique_ptr<HttpTransfer> transfer = std::move(it->second);
    m_transfers.erase(it);
    // May call on_socket (CURL_POLL_REMOVE) and on_timer; both are safe here.
    if (transfer->in_multi)
        curl_multi_remove_handle(m_multi.get(), transfer->easy.get());
    defer(id, std::move(transfer->request.url), std::move(transfer->callback), std::move(result));
}

void HttpClient::fail_all(HttpClientError kind, std::string const& detail)
{
    std::vector<HttpRequestId> ids;
    for (auto const& [id, transfer] : m_transfers)
        ids.push_back(id);
    for (HttpRequestId id : ids) {
        Error error = http_error(kind, detail, m_transfers.at(id)->request.url);
        finish(id, std::move(error));
    }
}

void HttpClient::defer(HttpRequestId id, std::string url, Callback callback, Result<HttpClientResponse> result)
{
    m_completions.push_back(Completion { id, std::move(url), std::move(callback), std::move(result) });
    if (m_deliver_timer)
        uv_timer_start(m_deliver_timer.get(), &HttpClientTrampolines::on_deliver_timer, 0, 0);
}

// Runs the callbacks queued before this turn; those they queue wait for the
// next turn, so a callback that starts a request that fails at once cannot
// keep the loop here.
void HttpClient::deliver()
{
    LifetimeGuard alive = m_lifetime.guard();
    size_t due = m_completions.size();
    while (due-- > 0 && !m_completions.empty()) {
        Completion completion = std::move(m_completions.front());
        m_completions.pop_front();
        if (completion.callback)
            completion.callback(std::move(completion.result));
        if (!alive)
            return; // the callback destroyed the client; touch nothing
    }
    if (!m_completions.empty())
        uv_timer_start(m_deliver_timer.get(), &HttpClientTrampolines::on_deliver_timer, 0, 0);
}

int HttpClient::on_socket(int fd, int what, Watch* watch)
{
    if (what == CURL_POLL_REMOVE) {
        // curl closes the socket after this returns; closing the poll handle
        // now takes the fd out of epoll while it is still ours.
        if (watch) {
            if (auto it = m_watches.find(watch->fd); it != m_watches.end() && it->second.get() == watch)
                m_watches.erase(it);
        }
        return 0;
    }

    if (!watch) {
        // If we still watch an fd of this number, curl closed that socket
        // without telling us; drop the stale watch before making a new one.
        m_watches.erase(fd);
        auto poll = make_poll(m_loop, fd, nullptr);
        if (!poll) {
            // -1 makes curl fail every transfer of this multi handle; drive()
            // then starts afresh.
            log::error("http client: %s", poll.error().text().c_str());
            return -1;
        }
        auto made = std::make_unique<Watch>(Watch { this, fd, std::move(poll.value()) });
        made->poll.get()->data = made.get();
        watch = made.get();
        m_watches.emplace(fd, std::move(made));
        curl_multi_assign(m_multi.get(), fd, watch);
    }

    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    watch->events = events;
    if (int rc = uv_poll_start(watch->poll.get(), events, &HttpClientTrampolines::on_poll); rc < 0) {
        log::error("http client: uv_poll_start fd %d: %s", fd, uv_strerror(rc));
        curl_multi_assign(m_multi.get(), fd, nullptr);
        m_watches.erase(fd);
        return -1;
    }
    return 0;
}

void HttpClient::on_timeout_changed(long timeout_ms)
{
    if (!m_curl_timer)
        return;
    if (timeout_ms < 0) {
        uv_timer_stop(m_curl_timer.get());
        return;
    }
    // 0 means "as soon as possible": the next loop turn, never from here,
    // since curl may not be re-entered from its own callback.
    uv_timer_start(m_curl_timer.get(), &HttpClientTrampolines::on_curl_timer, static_cast<uint64_t>(timeout_ms), 0);
}

}
