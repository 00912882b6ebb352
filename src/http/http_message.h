// HTTP requests and responses as the worker's handlers see them: a parsed
// Request (head, complete body, client address) and the Response a handler
// gives back. HttpSession turns bytes into the one and the other into bytes;
// it alone owns framing (Content-Length, Connection, Transfer-Encoding).
#pragma once

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace posta {

// ASCII case-insensitive equality, for header names and tokens.
bool iequals(std::string_view a, std::string_view b);
// `text` with ASCII letters lower-cased (header names, hosts).
std::string ascii_lower(std::string_view text);
// `text` without leading and trailing spaces and tabs: a field value without
// its optional whitespace (RFC 9110 section 5.6.3, OWS).
std::string_view trim_ows(std::string_view text);

// Header fields in the order they came; names compare case-insensitively and
// keep the spelling they were given. A name may occur more than once.
class Headers {
public:
    using Field = std::pair<std::string, std::string>;

    void add(std::string name, std::string value);
    // Replaces every field of that name with one.
    void set(std::string_view name, std::string value);
    void remove(std::string_view name);

    // The first value of `name`, if any.
    std::optional<std::string_view> get(std::string_view name) const;
    size_t count(std::string_view name) const;

    std::vector<Field>::const_iterator begin() const { return m_fields.begin(); }
    std::vector<Field>::const_iterator end() const { return m_fields.end(); }
    size_t size() const { return m_fields.size(); }

private:
    std::vector<Field> m_fields;
};

struct Request {
    std::string method;         // "GET", as llhttp names it
    std::string target;         // the request-target as sent
    std::string path;           // up to '?', undecoded: "/.well-known/posta"
    std::string query;          // after '?', undecoded, without the '?'
    Headers headers;
    std::string body;           // the whole body, de-chunked, at most max_body_bytes
    // The client: the connection's peer, or the client a trusted proxy
    // names (a PROXY header's, or X-Forwarded-For's: http/forwarded.h).
    std::string client_address; // "203.0.113.7:51234" or "203.0.113.7 via 127.0.0.1:40000", for logs
    std::string client_host;    // "203.0.113.7", for rate limits
    // The client's connection was TLS: this worker's own, or one a trusted
    // front took (ClientOrigin::secure_at_front). A plain request for an
    // https identity is redirected (worker/https_redirect.h).
    bool secure = false;
    int http_major = 1;
    int http_minor = 1;
    bool keep_alive = true;     // the client allows another request on this connection

    bool is_head() const { return method == "HEAD"; }
};

struct Response {
    int status = 200;
    Headers headers;
    std::string body;

    // `value` serialized compactly (invalid UTF-8 replaced, never thrown),
    // with Content-Type: application/json.
    static Response json(int status, nlohmann::json const& value);
    // {"error": code, "message": message}: the error format of PROTOCOL.md.
    static Response error(int status, std::string_view code, std::string_view message);
};

// Why a request is refused before a handler sees it: the status and the
// error body of PROTOCOL.md ({"error": code, "message": message}). The
// connection closes once it is answered.
struct Rejection {
    int status = 400;
    std::string code;
    std::string message;

    Response response() const { return Response::error(status, code, message); }
};

// "OK", "Not Found", ...; "Unknown" for codes we never send.
char const* status_reason(int status);

// Whether a response with this status carries no body and no Content-Length
// (1xx, 204, 304; RFC 9110 section 8.6, RFC 9112 section 6.3).
bool status_forbids_body(int status);

}
