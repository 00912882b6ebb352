// llhttp calls back with pieces of fields and values; they are collected
// here and added to the request whole. The callbacks only record; what to do
// is decided in parse(), after llhttp_execute returns, which is also where
// the head's size is checked: the parser pauses at the end of every head, so
// every byte consumed before that pause belongs to a head.
//
// Fields that come after the head are a chunked body's trailer: they are not
// collected at all (so they cost no memory) and never reach the request,
// whose headers passed their checks before the body was read. What bounds
// them, and chunk extensions, is one count: the bytes consumed after the
// head minus the body bytes they produced. llhttp reports extensions by
// callback, but not the leading zeros of a chunk size or the spaces around
// it, which can be as long; the count covers every kind of framing.
#include "request_parser.h"

#include <algorithm>

namespace posta {

RequestParser::RequestParser(Limits limits)
    : m_limits(limits)
{
    llhttp_init(&m_parser, HTTP_REQUEST, settings());
    m_parser.data = this;
}

RequestParser::Step RequestParser::parse(std::string_view input)
{
    size_t length = m_in_head ? std::min(input.size(), m_limits.max_head_bytes + 1 - m_head_bytes) : input.size();
    m_must_parse = false;
    m_pause = Pause::None;
    size_t body_before = m_request.body.size();
    // An empty view may have no data at all (a resume after a pause), and
    // llhttp does pointer arithmetic on it: give it an empty string instead.
    char const* data = input.empty() ? "" : input.data();
    llhttp_errno_t err = llhttp_execute(&m_parser, data, length);
    size_t consumed = length;
    if (err != HPE_OK) {
        char const* pos = llhttp_get_error_pos(&m_parser);
        if (pos >= data && pos <= data + length)
            consumed = static_cast<size_t>(pos - data);
    }
    if (m_in_head)
        m_head_bytes += consumed;
    else
        m_framing_bytes += consumed - (m_request.body.size() - body_before);
    bool head_too_large = m_head_bytes > m_limits.max_head_bytes;
    // Refused whatever llhttp said: even a complete message, whose framing
    // was read in full, is one we refuse rather than half-check. (A body
    // chunk refused as too large was consumed but not kept: not framing.)
    if (!m_body_too_large && m_framing_bytes > m_limits.max_head_bytes) {
        return reject({ 413, "body_too_large",
            "the chunked framing of the request body (chunk sizes, extensions, trailer) is larger than "
                + std::to_string(m_limits.max_head_bytes) + " bytes" }, consumed);
    }

    if (err == HPE_OK) {
        if (m_in_head && head_too_large)
            return reject({ 431, "head_too_large", "the request head is larger than this server accepts" }, consumed);
        return { Event::NeedMore, consumed };
    }
    if (err == HPE_PAUSED) {
        if (m_pause == Pause::HeadersComplete) {
            m_in_head = false;
            if (head_too_large)
                return reject({ 431, "head_too_large", "the request head is larger than this server accepts" }, consumed);
            return { Event::HeadComplete, consumed };
        }
        if (m_pause == Pause::MessageComplete)
            return { Event::MessageComplete, consumed };
        return reject({ 500, "internal_error", "the request parser paused for no reason" }, consumed);
    }
    if (m_body_too_large)
        return reject(body_too_large(m_limits.max_body_bytes), consumed);
    return reject({ 400, "bad_request", std::string("malformed request: ") + llhttp_get_error_reason(&m_parser) }, consumed);
}

RequestParser::Step RequestParser::reject(Rejection rejection, size_t consumed)
{
    m_rejection = std::move(rejection);
    return { Event::Rejected, consumed };
}

void RequestParser::read_body()
{
    llhttp_resume(&m_parser);
    m_must_parse = true;
}

void RequestParser::next_request()
{
    // m_request was taken (take_request); on_message_begin starts the next
    // one afresh, once, when its first byte comes.
    m_framing = BodyFraming {};
    m_field.clear();
    m_value.clear();
    m_field_complete = false;
    m_message_begun = false;
    m_in_head = true;
    m_head_bytes = 0;
    m_framing_bytes = 0;
    m_body_too_large = false;
    llhttp_resume(&m_parser);
}

Request RequestParser::take_request() { return std::move(m_request); }

// ---- llhttp trampolines ----

llhttp_settings_t const* RequestParser::settings()
{
    static llhttp_settings_t const settings = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_message_begin = on_message_begin;
        s.on_url = on_url;
        s.on_header_field = on_header_field;
        s.on_header_field_complete = on_header_field_complete;
        s.on_header_value = on_header_value;
        s.on_header_value_complete = on_header_value_complete;
        s.on_headers_complete = on_headers_complete;
        s.on_body = on_body;
        s.on_message_complete = on_message_complete;
        return s;
    }();
    return &settings;
}

RequestParser& RequestParser::owner_of(llhttp_t* parser) { return *static_cast<RequestParser*>(parser->data); }

int RequestParser::on_message_begin(llhttp_t* parser) noexcept
{
    RequestParser& self = owner_of(parser);
    self.m_request = Request {};
    self.m_message_begun = true;
    return 0;
}

int RequestParser::on_url(llhttp_t* parser, char const* at, size_t length) noexcept
{
    owner_of(parser).m_request.target.append(at, length);
    return 0;
}

void RequestParser::flush_header()
{
    if (!m_in_head) {
        m_field_complete = false;
        return; // a trailer field: nothing was collected
    }
    std::string_view value = trim_ows(m_value);
    m_request.headers.add(std::move(m_field), std::string(value));
    m_field.clear();
    m_value.clear();
    m_field_complete = false;
}

int RequestParser::on_header_field(llhttp_t* parser, char const* at, size_t length) noexcept
{
    RequestParser& self = owner_of(parser);
    if (self.m_field_complete)
        self.flush_header(); // the previous field had an empty value
    if (self.m_in_head)
        self.m_field.append(at, length);
    return 0;
}

int RequestParser::on_header_field_complete(llhttp_t* parser) noexcept
{
    owner_of(parser).m_field_complete = true;
    return 0;
}

int RequestParser::on_header_value(llhttp_t* parser, char const* at, size_t length) noexcept
{
    RequestParser& self = owner_of(parser);
    if (self.m_in_head)
        self.m_value.append(at, length);
    return 0;
}

int RequestParser::on_header_value_complete(llhttp_t* parser) noexcept
{
    owner_of(parser).flush_header();
    return 0;
}

int RequestParser::on_headers_complete(llhttp_t* parser) noexcept
{
    RequestParser& self = owner_of(parser);
    if (self.m_field_complete)
        self.flush_header();
    Request& request = self.m_request;
    request.method = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
    request.http_major = parser->http_major;
    request.http_minor = parser->http_minor;
    // We never switch protocols: after an Upgrade or CONNECT request the
    // bytes are not HTTP, so the connection ends with its answer.
    request.keep_alive = llhttp_should_keep_alive(parser) != 0 && parser->upgrade == 0;
    // Read now: llhttp counts content_length down as the body arrives.
    self.m_framing.chunked = (parser->flags & F_CHUNKED) != 0;
    self.m_framing.content_length.reset();
    if (!self.m_framing.chunked && (parser->flags & F_CONTENT_LENGTH) != 0)
        self.m_framing.content_length = parser->content_length;
    self.m_pause = Pause::HeadersComplete;
    return HPE_PAUSED;
}

int RequestParser::on_body(llhttp_t* parser, char const* at, size_t length) noexcept
{
    RequestParser& self = owner_of(parser);
    if (self.m_request.body.size() + length > self.m_limits.max_body_bytes) {
        self.m_body_too_large = true;
        return HPE_USER;
    }
    self.m_request.body.append(at, length);
    return 0;
}

int RequestParser::on_message_complete(llhttp_t* parser) noexcept
{
    owner_of(parser).m_pause = Pause::MessageComplete;
    return HPE_PAUSED;
}

}
