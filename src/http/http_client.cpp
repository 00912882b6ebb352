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

#include "common/address.h"
#include "common/log.h"
#include "http/http_message.h"

#include <curl/curl.h>

#include <cctype>
#include <sys/socket.h>

namespace posta {

namespace {

// Bound on the response head (status line and headers, 1xx heads included).
// curl bounds one header line at 100 KiB itself; this bounds their sum.
constexpr size_t max_head_bytes = 64 * 1024;
// Bound on the hosts address_of() remembers (one per peer machine name).
constexpr size_t max_addresses = 4096;

struct EasyDeleter {
    void operator()(CURL* easy) const noexcept { curl_easy_cleanup(easy); }
};
struct SlistDeleter {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};

Error http_error(HttpClientError kind, std::string detail, std::string url)
{
    return Error::of(kind, "http", std::move(detail), std::move(url));
}

// "host:port" of an http(s) URL, the default port filled in, as curl parses
// it; empty for a URL curl cannot parse.
std::string origin_key(std::string const& url)
{
    std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(curl_url(), &curl_url_cleanup);
    if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
        return {};
    char* host = nullptr;
    char* port = nullptr;
    std::string key;
    if (curl_url_get(parsed.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK
        && curl_url_get(parsed.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        key = ascii_lower(host);
        key += ':';
        key += port;
    }
    curl_free(host);
    curl_free(port);
    return key;
}

// RFC 9110 section 5.6.2: token = 1*tchar.
bool is_token(std::string_view text)
{
    if (text.empty())
        return false;
    for (unsigned char c : text) {
        if (std::isalnum(c))
            continue;
        if (std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos)
            return false;
    }
    return true;
}

// What we refuse in a header value: anything that would end the line.
bool is_field_value(std::string_view text)
{
    return text.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}


HttpClientError kind_of(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return HttpClientError::Connect;
    case CURLE_OPERATION_TIMEDOUT:
        return HttpClientError::Timeout;
    case CURLE_FILESIZE_EXCEEDED:
        return HttpClientError::TooLarge;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        return HttpClientError::Tls;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return HttpClientError::Invalid;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_WRITE_ERROR: // our callbacks only fail for the bounds, handled apart
        return HttpClientError::Internal;
    default:
        // GOT_NOTHING, RECV_ERROR, SEND_ERROR, WEIRD_SERVER_REPLY, PARTIAL_FILE,
        // HTTP2, ...: the exchange itself went wrong.
        return HttpClientError::Protocol;
    }
}

}

struct HttpClient::Transfer {
    enum class Overflow { None, Head, Body };

    HttpRequestId id = 0;
    HttpClientRequest request;
    Callback callback;
    std::unique_ptr<curl_slist, SlistDeleter> header_list; // outlives easy, which points at it
    std::unique_ptr<CURL, EasyDeleter> easy;
    bool in_multi = false;
    HttpClientResponse response;
    size_t head_bytes = 0;
    Overflow overflow = Overflow::None;
    char error[CURL_ERROR_SIZE] = {};
    std::string first_address; // of the first connection it opened, if any
};

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

    // curl opens every socket of a connection attempt through this, so it
    // sees the addresses tried, also those that refuse or time out (curl
    // reports none of those itself).
    static curl_socket_t on_open_socket(void* userp, curlsocktype purpose, curl_sockaddr* address) noexcept
    {
        auto& t = *static_cast<HttpClient::Transfer*>(userp);
        if (purpose == CURLSOCKTYPE_IPCXN && t.first_address.empty())
            t.first_address = format_address(&address->addr, address->addrlen);
        return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    }

    static size_t on_body(char* data, size_t size, size_t count, void* userp) noexcept
    {
        auto& t = *static_cast<HttpClient::Transfer*>(userp);
        size_t length = size * count;
        if (length > t.request.max_response_bytes - t.response.body.size()) {
            t.overflow = HttpClient::Transfer::Overflow::Body;
            return CURL_WRITEFUNC_ERROR;
        }
        t.response.body.append(data, length);
        return length;
    }

    // One call per header line, the status line and the empty line included.
    static size_t on_header(char* data, size_t size, size_t count, void* userp) noexcept
    {
        auto& t = *static_cast<HttpClient::Transfer*>(userp);
        size_t length = size * count;
        t.head_bytes += length;
        if (t.head_bytes > max_head_bytes) {
            t.overflow = HttpClient::Transfer::Overflow::Head;
            return CURL_WRITEFUNC_ERROR;
        }
        std::string_view line(data, length);
        while (line.ends_with('\n') || line.ends_with('\r'))
            line.remove_suffix(1);
        auto& headers = t.response.headers;
        if (line.starts_with("HTTP/")) {
            // A new head begins: the one before was a 1xx (100 Continue).
            headers.clear();
        } else if (line.starts_with(" ") || line.starts_with("\t")) {
            // Obsolete line folding (RFC 9112 section 5.2): one space instead.
            if (!headers.empty() && !trim_ows(line).empty()) {
                headers.back().second += ' ';
                headers.back().second += trim_ows(line);
            }
        } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
            headers.emplace_back(ascii_lower(trim_ows(line.substr(0, colon))), std::string(trim_ows(line.substr(colon + 1))));
        }
        return length;
    }
};

void HttpClient::MultiDeleter::operator()(void* multi) const noexcept
{
    curl_multi_cleanup(static_cast<CURLM*>(multi));
}

std::string HttpClientResponse::header(std::string_view name) const
{
    std::string out;
    bool found = false;
    for (auto const& [key, value] : headers) {
        if (!iequals(key, name))
            continue;
        if (found)
            out += ", ";
        out += value;
        found = true;
    }
    return out;
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
    std::unique_ptr<HttpClient> client(new HttpClient(loop, "posta-server/" + std::string(version)));
    if (auto opened = client->open_multi(); !opened)
        return opened.error();
    return client;
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
    if (m_destroyed)
        *m_destroyed = true;
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
        // A previous failure of the multi handle dropped it; try afresh.
        if (auto opened = open_multi(); !opened) {
            defer(id, url, std::move(callback), http_error(HttpClientError::Internal, opened.error().text(), url));
            return id;
        }
    }

    auto transfer = std::make_unique<Transfer>();
    transfer->id = id;
    transfer->request = std::move(request);
    transfer->callback = std::move(callback);
    if (auto prepared = prepare(*transfer); !prepared) {
        defer(id, transfer->request.url, std::move(transfer->callback), prepared.error());
        return id;
    }

    Transfer& t = *transfer;
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

// Validates the request and makes its CURL handle. The transfer must not
// move afterwards: curl keeps pointers to it, its body and its error buffer.
Result<void> HttpClient::prepare(Transfer& t)
{
    HttpClientRequest const& r = t.request;
    auto invalid = [&r](std::string detail) { return http_error(HttpClientError::Invalid, std::move(detail), r.url); };
    if (r.url.empty())
        return invalid("no URL");
    if (!is_token(r.method))
        return invalid("method is not an HTTP token");
    if (r.method == "HEAD" && !r.body.empty())
        return invalid("a HEAD request has no body");
    if (r.connect_timeout.count() <= 0 || r.timeout.count() <= 0)
        return invalid("timeouts must be positive");

    bool sends_body = !r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH";
    bool has_expect = false;
    bool has_content_type = false;
    std::vector<std::string> lines;
    for (auto const& [name, value] : r.headers) {
        if (!is_token(name) || !is_field_value(value))
            return invalid("header '" + name + "' has a bad name or value");
        has_expect = has_expect || iequals(name, "expect");
        has_content_type = has_content_type || iequals(name, "content-type");
        // "Name;" is curl's spelling of a header with an empty value.
        lines.push_back(value.empty() ? name + ";" : name + ": " + value);
    }
    // "Name:" removes a header curl would add. No "Expect: 100-continue": it
    // costs a round trip (or a second's wait) for our small bodies. And no
    // form Content-Type when the caller named none.
    if (!has_expect)
        lines.emplace_back("Expect:");
    if (sends_body && !has_content_type)
        lines.emplace_back("Content-Type:");
    for (auto const& line : lines) {
        curl_slist* head = curl_slist_append(t.header_list.get(), line.c_str());
        if (!head)
            return http_error(HttpClientError::Internal, "curl_slist_append: out of memory", r.url);
        (void)t.header_list.release();
        t.header_list.reset(head);
    }

    t.easy.reset(curl_easy_init());
    if (!t.easy)
        return http_error(HttpClientError::Internal, "curl_easy_init failed", r.url);
    CURL* easy = t.easy.get();

    // curl's type checks are C-only: every integer option here takes a long,
    // every *_LARGE one a curl_off_t.
    CURLcode rc = CURLE_OK;
    auto check = [&rc](CURLcode result) {
        if (rc == CURLE_OK)
            rc = result;
    };
    check(curl_easy_setopt(easy, CURLOPT_PRIVATE, &t));
    check(curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error));
    check(curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str()));
    check(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"));
    check(curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
    check(curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L));
    // Only what we configure: no proxy from http_proxy and friends.
    check(curl_easy_setopt(easy, CURLOPT_PROXY, ""));
    check(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L));
    check(curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L));
    // The system CA store (Debian's libcurl defaults to it), peer and host
    // verified: stated here so no default can weaken it.
    check(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L));
    check(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L));
    check(curl_easy_setopt(easy, CURLOPT_USERAGENT, m_user_agent.c_str()));
    check(curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout.count())));
    check(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count())));
    // 0 would mean "no limit" to curl; on_body enforces an empty bound.
    if (r.max_response_bytes > 0)
        check(curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.max_response_bytes)));
    check(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &HttpClientTrampolines::on_body));
    check(curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t));
    check(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &HttpClientTrampolines::on_header));
    check(curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t));
    check(curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &HttpClientTrampolines::on_open_socket));
    check(curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, &t));
    check(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t.header_list.get()));
    if (r.method == "HEAD") {
        check(curl_easy_setopt(easy, CURLOPT_NOBODY, 1L));
    } else if (sends_body) {
        // Not copied: the body lives in the transfer until curl is done.
        check(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size())));
        check(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.data()));
        if (r.method != "POST")
            check(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str()));
    } else if (r.method != "GET") {
        check(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str()));
    }
    if (rc != CURLE_OK)
        return http_error(kind_of(rc) == HttpClientError::Invalid ? HttpClientError::Invalid : HttpClientError::Internal,
            std::string("curl_easy_setopt: ") + curl_easy_strerror(rc), r.url);
    return {};
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
        auto& t = *reinterpret_cast<Transfer*>(priv);
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);

        if (code == CURLE_OK) {
            t.response.status = static_cast<int>(status);
            HttpClientResponse response = std::move(t.response);
            finish(t.id, std::move(response));
            continue;
        }
        HttpClientError kind = kind_of(code);
        std::string detail = t.error[0] ? t.error : curl_easy_strerror(code);
        if (t.overflow == Transfer::Overflow::Head) {
            kind = HttpClientError::TooLarge;
            detail = "response head larger than " + std::to_string(max_head_bytes) + " bytes";
        } else if (t.overflow == Transfer::Overflow::Body || code == CURLE_FILESIZE_EXCEEDED) {
            kind = HttpClientError::TooLarge;
            detail = "response body larger than " + std::to_string(t.request.max_response_bytes) + " bytes";
            if (status > 0)
                detail += " (status " + std::to_string(status) + ")";
        }
        finish(t.id, http_error(kind, std::move(detail), t.request.url));
    }
}

// The request's outcome is decided: its transfer leaves curl and is freed,
// and its callback is queued for the next loop turn.
void HttpClient::finish(HttpRequestId id, Result<HttpClientResponse> result)
{
    auto it = m_transfers.find(id);
    if (it == m_transfers.end())
        return;
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    m_transfers.erase(it);
    if (!transfer->first_address.empty()) {
        if (std::string origin = origin_key(transfer->request.url); !origin.empty()) {
            if (m_addresses.size() >= max_addresses && !m_addresses.contains(origin))
                m_addresses.clear();
            m_addresses[origin] = std::move(transfer->first_address);
        }
    }
    // May call on_socket (CURL_POLL_REMOVE) and on_timer; both are safe here.
    if (transfer->in_multi)
        curl_multi_remove_handle(m_multi.get(), transfer->easy.get());
    defer(id, std::move(transfer->request.url), std::move(transfer->callback), std::move(result));
}

std::optional<std::string> HttpClient::address_of(std::string_view url) const
{
    auto found = m_addresses.find(origin_key(std::string(url)));
    if (found == m_addresses.end())
        return std::nullopt;
    return found->second;
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
    bool destroyed = false;
    m_destroyed = &destroyed;
    size_t due = m_completions.size();
    while (due-- > 0 && !m_completions.empty()) {
        Completion completion = std::move(m_completions.front());
        m_completions.pop_front();
        if (completion.callback)
            completion.callback(std::move(completion.result));
        if (destroyed)
            return; // the callback destroyed the client; touch nothing
    }
    m_destroyed = nullptr;
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
