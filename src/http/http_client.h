// HttpClient: the worker's asynchronous outbound HTTP client, used by the
// outbox loop (deliveries) and the inbox (fetching a sender's document). It
// drives libcurl's multi interface from the worker's libuv loop: one uv_poll_t
// per socket curl asks us to watch, one uv_timer_t for curl's timeout, and one
// more timer that runs completed requests' callbacks. It owns its CURLM, every
// CURL of a request in flight and those handles; nothing it does blocks the loop.
#pragma once

#include "common/duration.h"
#include "common/lifetime.h"
#include "common/result.h"
#include "common/uv_handle.h"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <sys/socket.h>
#include <utility>
#include <vector>

namespace posta {

struct HttpClientRequest {
    std::string method = "GET"; // an HTTP token: GET, HEAD, POST, PUT, DELETE, ...
    // http:// or https:// only (https verified against the system CA store);
    // no proxy, and redirects are returned, never followed.
    std::string url;
    // Sent as given; one named like a header curl adds (Host, User-Agent)
    // replaces it. Names must be tokens; values must not hold CR, LF or NUL.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body; // sent with Content-Length when non-empty or for POST/PUT/PATCH
    Duration connect_timeout = std::chrono::seconds(10); // name resolution, TCP and TLS handshake; > 0
    Duration timeout = std::chrono::seconds(30); // the whole request, connect included; > 0
    // The response body may not be longer: a larger Content-Length is refused
    // before the body is read, and a body without one is cut off as soon as it
    // passes the bound. Either way the request fails with TooLarge, never with
    // a silently truncated body.
    size_t max_response_bytes = 64 * 1024;
};

struct HttpClientResponse {
    int status = 0;
    // In the order received, names lower-cased, values without surrounding
    // whitespace. Only the final response's (after a 100 Continue, say).
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    // Every value of the header `name` (any case), joined with ", " as RFC
    // 9110 section 5.3 allows; empty when it is absent.
    std::string header(std::string_view name) const;
};

// Why a request failed: the code of its Error (domain HttpClient, op "http",
// detail curl's message, context the URL); an answer with any status, 503
// included, is a response, not an error.
enum class HttpClientError : int {
    Connect = 1, // name not resolved, connection refused or unreachable
    Timeout,     // connect_timeout or timeout passed
    TooLarge,    // the response passed max_response_bytes (or the header bound)
    Tls,         // handshake failed, certificate not trusted or not for this host
    Protocol,    // not an HTTP answer we accept, or the connection broke mid-way
    Invalid,     // the request itself: bad URL, scheme, method, header, timeout
    Cancelled,   // cancel(), close(), or start() after close()
    Internal,    // out of memory, or curl or libuv refused a handle
    Refused,     // the connect hook refused every address (detail: its words)
};
template<>
struct ErrorDomainOf<HttpClientError> {
    static constexpr ErrorDomain value = ErrorDomain::HttpClient;
};

// The kind of a failed request's error (Internal for an Error not made here),
// and a short lower-case name of it for logs ("timeout", "too_large").
HttpClientError http_client_error(Error const&);
char const* http_client_error_name(HttpClientError);

using HttpRequestId = uint64_t;

// One connection attempt, just before curl opens its socket: after name
// resolution, once for every address curl tries (each of happy eyeballs'
// too). A request on a reused connection makes none.
struct HttpConnectAttempt {
    HttpRequestId request;
    std::string_view url; // the request's
    sockaddr const* address;
    socklen_t length;
};

struct HttpClientTrampolines;
struct HttpTransfer;

class HttpClient {
public:
    // Called once per started request with the response or the error.
    using Callback = std::function<void(Result<HttpClientResponse>)>;
    // Called for every connection attempt. A refusal (words for logs and
    // the owner) keeps that socket from being opened: curl goes on to the
    // next address, and the request fails with Refused and these words when
    // none is left. nullopt lets the attempt go. Runs inside curl, so it must
    // not start, cancel or close requests, nor throw.
    using ConnectHook = std::function<std::optional<std::string>(HttpConnectAttempt const&)>;

    // curl_global_init for the whole process (later calls return the first
    // outcome), and a check that this libcurl can serve us: 7.87 or later,
    // with an asynchronous resolver and TLS. The worker calls it at start,
    // before it serves, so a bad libcurl stops it with a clear message; the
    // supervisor never touches curl. create() calls it too.
    static Result<void> init_global();

    // A client on `loop`, sending "User-Agent: posta-server/<version>".
    static Result<std::unique_ptr<HttpClient>> create(uv_loop_t* loop, std::string_view version);

    // Abandons every request without calling its callback (the callbacks and
    // what they captured are destroyed), closes idle connections, and closes
    // its handles; their memory is freed by the loop's next turn, so run the
    // loop once more before uv_loop_close(). It may be destroyed from inside
    // one of its own callbacks; the callbacks still queued are then dropped.
    ~HttpClient();
    HttpClient(HttpClient const&) = delete;
    HttpClient& operator=(HttpClient const&) = delete;

    // Starts a request and returns its id (never 0). start() always succeeds:
    // anything wrong with the request, or a failure of curl while setting it
    // up, reaches the callback like any other error. The callback is called
    // exactly once, from the loop, never from inside start(), cancel() or
    // close(); callbacks may start, cancel and close freely, and must not
    // throw (they run inside a libuv callback).
    HttpRequestId start(HttpClientRequest, Callback);

    // Stops the request at once (its connection is closed). If its callback
    // has not run yet, it will run with Cancelled on a later loop turn, even
    // if the response had already arrived. Unknown or finished ids are ignored.
    void cancel(HttpRequestId);

    // cancel() for every request whose callback has not run, and closes idle
    // connections. Later start()s get Cancelled. The loop's handles stay open
    // but idle, so uv_run() returns once the Cancelled callbacks have run.
    void close();

    // Requests started whose callbacks have not run yet.
    size_t in_flight() const { return m_transfers.size() + m_completions.size(); }

    // Replaces the hook (an empty one allows every attempt). It applies to
    // the connections opened from then on, those of requests in flight too.
    void set_connect_hook(ConnectHook hook) { m_connect_hook = std::move(hook); }

    // The CA certificates (PEM text) https peers are verified against from
    // then on, instead of the system's store; empty: the system's store.
    void set_trust_anchors(std::string pem) { m_trust_anchors = std::move(pem); }

private:
    friend struct HttpClientTrampolines;
    struct Watch;    // one socket curl asked us to watch
    struct Completion {
        HttpRequestId id;
        std::string url;
        Callback callback;
        Result<HttpClientResponse> result;
    };
    struct MultiDeleter {
        void operator()(void* multi) const noexcept;
    };

    HttpClient(uv_loop_t* loop, std::string user_agent);

    Result<void> open_multi();
    void close_multi();
    void drive(int fd, int curl_events);
    void collect_done();
    void finish(HttpRequestId, Result<HttpClientResponse>);
    void fail_all(HttpClientError, std::string const& detail);
    void defer(HttpRequestId, std::string url, Callback, Result<HttpClientResponse>);
    void deliver();

    int on_socket(int fd, int what, Watch* watch);
    void on_timeout_changed(long timeout_ms);

    uv_loop_t* m_loop;
    std::string m_user_agent;
    std::unique_ptr<void, MultiDeleter> m_multi; // the CURLM; null once closed
    UvHandle<uv_timer_t> m_curl_timer;           // curl's next timeout
    UvHandle<uv_timer_t> m_deliver_timer;        // runs queued callbacks
    std::unordered_map<int, std::unique_ptr<Watch>> m_watches; // by fd
    std::unordered_map<HttpRequestId, std::unique_ptr<HttpTransfer>> m_transfers; // http_transfer.h
    std::deque<Completion> m_completions; // decided, callback not run yet
    ConnectHook m_connect_hook;
    std::string m_trust_anchors; // PEM; empty: the system's CA store
    HttpRequestId m_next_id = 1;
    bool m_closed = false;
    Lifetime m_lifetime; // deliver() learns through it that a callback destroyed us
};

}
