// serialize_response: a Response as the bytes of an HTTP/1.1 answer, with
// the framing (Content-Length, Connection) that only the server decides.
// Pure but for the clock (Date) and one log line for a handler's bad header;
// HttpSession writes what it returns. PreparedResponse: the same bytes for an
// answer that never changes, checked and laid out once.
#pragma once

#include "http/http_message.h"

#include <string>
#include <string_view>

namespace posta {

struct ResponseFraming {
    enum class Body {
        ContentLength, // the body is as long as Content-Length says
        UntilClose,    // a stream: the body ends with the connection
    };
    Body body = Body::ContentLength;
    bool keep_alive = true;    // false: Connection: close
    int http_minor = 1;        // of the request: HTTP/1.0 needs keep-alive said
    bool head_request = false; // HEAD: Content-Length as for GET, no body
};

// The status line, Date (unless the handler set one), the handler's headers
// without the framing ones (Content-Length, Connection, Transfer-Encoding)
// and without any with a line break in them (logged with `peer`: a handler
// bug must not let a value forge headers), our framing, and the body.
std::string serialize_response(Response const& response, ResponseFraming const& framing, std::string_view peer);

// An answer that is the same for every request, such as the identity
// document: its status line and headers are checked and laid out once, when
// it is made, and each request adds only Date and its framing. serialize()
// returns exactly what serialize_response() would for response().
class PreparedResponse {
public:
    explicit PreparedResponse(Response response);

    Response const& response() const { return m_response; }
    std::string serialize(ResponseFraming const& framing) const;

private:
    Response m_response;
    std::string m_status_line; // "HTTP/1.1 200 OK\r\n"
    std::string m_fields;      // the handler's header lines, checked
    bool m_has_date = false;
};

}
