#include "head_peek.h"

#include <strings.h>

namespace posta {

namespace {

llhttp_settings_t const& settings()
{
    static llhttp_settings_t const s = [] {
        llhttp_settings_t out;
        llhttp_settings_init(&out);
        return out;
    }();
    return s;
}

HeadPeek& owner(llhttp_t* parser) { return *static_cast<HeadPeek*>(parser->data); }

// Header names are bounded by the head bound, but a pathological client could
// send one huge name; we only need to know whether it is "host".
constexpr size_t max_kept_field = 16;

}

HeadPeek::HeadPeek(size_t max_head_bytes)
    : m_max_head_bytes(max_head_bytes)
{
    reset();
}

void HeadPeek::reset()
{
    static llhttp_settings_t callbacks = [] {
        llhttp_settings_t s = settings();
        s.on_header_field = &HeadPeek::on_header_field;
        s.on_header_field_complete = &HeadPeek::on_header_field_complete;
        s.on_header_value = &HeadPeek::on_header_value;
        s.on_header_value_complete = &HeadPeek::on_header_value_complete;
        s.on_headers_complete = &HeadPeek::on_headers_complete;
        return s;
    }();
    llhttp_init(&m_parser, HTTP_REQUEST, &callbacks);
    m_parser.data = this;
    m_consumed = 0;
    m_state = State::NeedMore;
    m_field.clear();
    m_in_host = false;
    m_host.clear();
    m_host_count = 0;
    m_error_reason = "";
}

HeadPeek::State HeadPeek::feed(std::string_view bytes)
{
    if (m_state != State::NeedMore)
        return m_state;

    // Never parse past the bound: what lies beyond it cannot be part of an
    // acceptable head.
    size_t room = m_max_head_bytes - m_consumed;
    size_t length = bytes.size() < room ? bytes.size() : room;
    llhttp_errno_t err = llhttp_execute(&m_parser, bytes.data(), length);
    if (err == HPE_PAUSED) {
        m_state = State::Complete;
        return m_state;
    }
    if (err != HPE_OK) {
        m_error_reason = llhttp_get_error_reason(&m_parser);
        m_state = State::Malformed;
        return m_state;
    }
    m_consumed += length;
    if (m_consumed >= m_max_head_bytes)
        m_state = State::TooLarge;
    return m_state;
}

bool HeadPeek::host_required() const
{
    return m_parser.http_major > 1 || (m_parser.http_major == 1 && m_parser.http_minor >= 1);
}

int HeadPeek::on_header_field(llhttp_t* parser, char const* at, size_t length) noexcept
{
    HeadPeek& self = owner(parser);
    if (self.m_field.size() + length <= max_kept_field)
        self.m_field.append(at, length);
    else
        self.m_field.assign(max_kept_field + 1, '-');
    return 0;
}

int HeadPeek::on_header_field_complete(llhttp_t* parser) noexcept
{
    HeadPeek& self = owner(parser);
    self.m_in_host = self.m_field.size() == 4 && strncasecmp(self.m_field.data(), "host", 4) == 0;
    self.m_field.clear();
    return 0;
}

int HeadPeek::on_header_value(llhttp_t* parser, char const* at, size_t length) noexcept
{
    HeadPeek& self = owner(parser);
    if (self.m_in_host && self.m_host_count == 0)
        self.m_host.append(at, length);
    return 0;
}

int HeadPeek::on_header_value_complete(llhttp_t* parser) noexcept
{
    HeadPeek& self = owner(parser);
    if (self.m_in_host)
        ++self.m_host_count;
    self.m_in_host = false;
    return 0;
}

int HeadPeek::on_headers_complete(llhttp_t*) noexcept
{
    // Stop here: the body and any pipelined request are the worker's.
    return HPE_PAUSED;
}

}
