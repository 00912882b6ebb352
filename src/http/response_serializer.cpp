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

void append_status_line(std::string& out, int status)
{
    out += "HTTP/1.1 ";
    out += std::to_string(status);
    out += ' ';
    out += status_reason(status);
    out += "\r\n";
}

void append_date(std::string& out)
{
    out += "Date: ";
    out += http_date_now();
    out += "\r\n";
}

void append_fields(std::string& out, Headers const& headers, std::string_view peer)
{
    for (auto const& [name, value] : headers) {
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
}

// Content-Length and Connection as the framing says, the blank line, and
// the body. HEAD gets GET's Content-Length, without the body (RFC 9110
// 9.3.2). A stream's body ends with the connection (RFC 9112 section 6.3,
// item 8).
void append_framing_and_body(std::string& out, Response const& response, ResponseFraming const& framing)
{
    bool const no_body = status_forbids_body(response.status);
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
}

}

std::string serialize_response(Response const& response, ResponseFraming const& framing, std::string_view peer)
{
    std::string out;
    out.reserve(256 + response.body.size());
    append_status_line(out, response.status);
    if (response.headers.count("Date") == 0)
        append_date(out);
    append_fields(out, response.headers, peer);
    append_framing_and_body(out, response, framing);
    return out;
}

PreparedResponse::PreparedResponse(Response response)
    : m_response(std::move(response))
    , m_has_date(m_response.headers.count("Date") != 0)
{
    append_status_line(m_status_line, m_response.status);
    append_fields(m_fields, m_response.headers, "prepared response");
}

std::string PreparedResponse::serialize(ResponseFraming const& framing) const
{
    std::string out;
    out.reserve(m_status_line.size() + m_fields.size() + 96 + m_response.body.size());
    out += m_status_line;
    if (!m_has_date)
        append_date(out);
    out += m_fields;
    append_framing_and_body(out, m_response, framing);
    return out;
}

}
