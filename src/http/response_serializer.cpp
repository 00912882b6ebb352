#include "response_serializer.h"

#include "common/log.h"
#include "protocol/timestamp.h"

namespace posta {

namespace {

// One pass over the bytes: find_first_of("\r\n") calls memchr on the
// two-byte set once per byte of `text`, which on the hot path of every
// answer cost more than the rest of the serialisation.
bool has_line_break(std::string_view text)
{
    for (char c : text) {
        if (c == '\r' || c == '\n')
            return true;
    }
    return false;
}

}

std::string serialize_response(Response const& response, ResponseFraming const& framing, std::string_view peer)
{
    bool no_body = status_forbids_body(response.status);
    std::string out;
    out.reserve(256 + response.body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(response.status);
    out += ' ';
    out += status_reason(response.status);
    out += "\r\n";
    if (response.headers.count("Date") == 0) {
        out += "Date: ";
        out += http_date_now();
        out += "\r\n";
    }
    for (auto const& [name, value] : response.headers) {
        if (iequals(name, "Content-Length") || iequals(name, "Connection") || iequals(name, "Transfer-Encoding"))
            continue;
        if (has_line_break(name) || has_line_break(value)) {
            log::error("%.*s: dropped response header %s with a line break", static_cast<int>(peer.size()),
                peer.data(), name.c_str());
            continue;
        }
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    // HEAD gets GET's Content-Length, without the body (RFC 9110 9.3.2). A
    // stream's body ends with the connection (RFC 9112 section 6.3, item 8).
    if (!no_body && framing.body == ResponseFraming::Body::ContentLength) {
        out += "Content-Length: ";
        out += std::to_string(response.body.size());
        out += "\r\n";
    }
    if (!framing.keep_alive)
        out += "Connection: close\r\n";
    else if (framing.http_minor == 0)
        out += "Connection: keep-alive\r\n";
    out += "\r\n";
    if (!no_body && !framing.head_request)
        out += response.body;
    return out;
}

}
