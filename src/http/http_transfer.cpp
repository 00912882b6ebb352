// One transfer's side of the client: what is checked before curl sees a
// request, which options every request gets (no proxy, no redirects, TLS
// verified, bounds on time and size), and how curl's result becomes ours.
#include "http_transfer.h"

#include "http/http_message.h"

#include <cctype>
#include <sys/socket.h>

namespace posta {

namespace {

// Bound on the response head (status line and headers, 1xx heads included).
// curl bounds one header line at 100 KiB itself; this bounds their sum.
constexpr size_t max_head_bytes = 64 * 1024;

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

Error http_error(HttpClientError kind, std::string detail, std::string url)
{
    return Error::of(kind, "http", std::move(detail), std::move(url));
}

// curl's per-transfer callbacks; each gets the transfer as its userp.
struct TransferTrampolines {
    // curl opens every socket of a connection attempt through this, after
    // name resolution, so the connect hook sees each address tried, also
    // those that refuse or time out (curl reports none of those itself), and
    // a name that resolves differently at each lookup cannot slip past it.
    static curl_socket_t on_open_socket(void* userp, curlsocktype, curl_sockaddr* address) noexcept
    {
        auto& t = *static_cast<HttpTransfer*>(userp);
        if (t.connect_hook && *t.connect_hook) {
            auto const& hook = *t.connect_hook;
            std::optional<std::string> refusal;
            try {
                refusal = hook(HttpConnectAttempt { t.id, t.request.url, &address->addr, address->addrlen });
            } catch (...) {
                refusal = "the connect hook failed";
            }
            if (refusal) {
                t.refusal = std::move(*refusal);
                return CURL_SOCKET_BAD; // curl tries the next address, if any
            }
        }
        return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    }

    static size_t on_body(char* data, size_t size, size_t count, void* userp) noexcept
    {
        auto& t = *static_cast<HttpTransfer*>(userp);
        size_t length = size * count;
        if (length > t.request.max_response_bytes - t.response.body.size()) {
            t.overflow = HttpTransfer::Overflow::Body;
            return CURL_WRITEFUNC_ERROR;
        }
        t.response.body.append(data, length);
        return length;
    }

    // One call per header line, the status line and the empty line included.
    static size_t on_header(char* data, size_t size, size_t count, void* userp) noexcept
    {
        auto& t = *static_cast<HttpTransfer*>(userp);
        size_t length = size * count;
        t.head_bytes += length;
        if (t.head_bytes > max_head_bytes) {
            t.overflow = HttpTransfer::Overflow::Head;
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

Result<void> HttpTransfer::prepare(std::string const& user_agent, std::string const& trust_anchors)
{
    HttpTransfer& t = *this;
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
    CURL* handle = t.easy.get();

    // curl's type checks are C-only: every integer option here takes a long,
    // every *_LARGE one a curl_off_t.
    CURLcode rc = CURLE_OK;
    auto check = [&rc](CURLcode result) {
        if (rc == CURLE_OK)
            rc = result;
    };
    check(curl_easy_setopt(handle, CURLOPT_PRIVATE, &t));
    check(curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, t.error));
    check(curl_easy_setopt(handle, CURLOPT_URL, r.url.c_str()));
    check(curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https"));
    check(curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
    check(curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L));
    // Only what we configure: no proxy from http_proxy and friends.
    check(curl_easy_setopt(handle, CURLOPT_PROXY, ""));
    check(curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L));
    check(curl_easy_setopt(handle, CURLOPT_QUICK_EXIT, 1L));
    // The system CA store (Debian's libcurl defaults to it), peer and host
    // verified: stated here so no default can weaken it.
    check(curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L));
    check(curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L));
    if (!trust_anchors.empty()) {
        // Instead of the store, not beside it: the blob replaces the CA
        // file, and no CA folder is looked in either.
        curl_blob blob { const_cast<char*>(trust_anchors.data()), trust_anchors.size(), CURL_BLOB_COPY };
        check(curl_easy_setopt(handle, CURLOPT_CAINFO_BLOB, &blob));
        check(curl_easy_setopt(handle, CURLOPT_CAPATH, static_cast<char*>(nullptr)));
    }
    check(curl_easy_setopt(handle, CURLOPT_USERAGENT, user_agent.c_str()));
    check(curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout.count())));
    check(curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count())));
    // 0 would mean "no limit" to curl; on_body enforces an empty bound.
    if (r.max_response_bytes > 0)
        check(curl_easy_setopt(handle, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.max_response_bytes)));
    check(curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &TransferTrampolines::on_body));
    check(curl_easy_setopt(handle, CURLOPT_WRITEDATA, &t));
    check(curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &TransferTrampolines::on_header));
    check(curl_easy_setopt(handle, CURLOPT_HEADERDATA, &t));
    check(curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, &TransferTrampolines::on_open_socket));
    check(curl_easy_setopt(handle, CURLOPT_OPENSOCKETDATA, &t));
    check(curl_easy_setopt(handle, CURLOPT_HTTPHEADER, t.header_list.get()));
    if (r.method == "HEAD") {
        check(curl_easy_setopt(handle, CURLOPT_NOBODY, 1L));
    } else if (sends_body) {
        // Not copied: the body lives in the transfer until curl is done.
        check(curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size())));
        check(curl_easy_setopt(handle, CURLOPT_POSTFIELDS, r.body.data()));
        if (r.method != "POST")
            check(curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, r.method.c_str()));
    } else if (r.method != "GET") {
        check(curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, r.method.c_str()));
    }
    if (rc != CURLE_OK)
        return http_error(kind_of(rc) == HttpClientError::Invalid ? HttpClientError::Invalid : HttpClientError::Internal,
            std::string("curl_easy_setopt: ") + curl_easy_strerror(rc), r.url);
    return {};
}

Result<HttpClientResponse> HttpTransfer::outcome(CURLcode code)
{
    long status = 0;
    curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &status);
    if (code == CURLE_OK) {
        response.status = static_cast<int>(status);
        return std::move(response);
    }
    HttpClientError kind = kind_of(code);
    std::string detail = error[0] ? error : curl_easy_strerror(code);
    if (code == CURLE_COULDNT_CONNECT && !refusal.empty()) {
        kind = HttpClientError::Refused;
        detail = std::move(refusal);
    } else if (overflow == Overflow::Head) {
        kind = HttpClientError::TooLarge;
        detail = "response head larger than " + std::to_string(max_head_bytes) + " bytes";
    } else if (overflow == Overflow::Body || code == CURLE_FILESIZE_EXCEEDED) {
        kind = HttpClientError::TooLarge;
        detail = "response body larger than " + std::to_string(request.max_response_bytes) + " bytes";
        if (status > 0)
            detail += " (status " + std::to_string(status) + ")";
    }
    return http_error(kind, std::move(detail), request.url);
}

}
