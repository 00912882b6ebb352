// HeadPeek: the supervisor's incremental reader of a request head. It runs
// llhttp over the bytes of a new connection only until the head is complete,
// to learn the Host header and HTTP version; it never looks at a body. Fed
// either a MSG_PEEK view (fast path) or bytes consumed off a slow client.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace posta {

class HeadPeek {
public:
    enum class State {
        NeedMore, // head not complete yet; feed more bytes
        Complete, // head complete: host() and host_count() are final
        Malformed, // not HTTP, or a head llhttp rejects -> 400
        TooLarge,  // head longer than the bound -> 431
    };

    explicit HeadPeek(size_t max_head_bytes);
    HeadPeek(HeadPeek const&) = delete;
    HeadPeek& operator=(HeadPeek const&) = delete;

    // Forgets everything, for the next connection.
    void reset();

    // Parses the next `bytes` of the connection (continuing where the last
    // call stopped). Bytes after the head are not examined.
    State feed(std::string_view bytes);

    // The bound given at construction: feed() never parses more bytes.
    size_t max_head_bytes() const { return m_max_head_bytes; }
    // The raw Host value (empty when absent) and how many Host headers came.
    std::string const& host() const { return m_host; }
    int host_count() const { return m_host_count; }
    // HTTP/1.1 and later require a Host header (RFC 9112, section 3.2).
    bool host_required() const;
    char const* error_reason() const { return m_error_reason; }

private:
    static int on_header_field(llhttp_t*, char const*, size_t) noexcept;
    static int on_header_field_complete(llhttp_t*) noexcept;
    static int on_header_value(llhttp_t*, char const*, size_t) noexcept;
    static int on_header_value_complete(llhttp_t*) noexcept;
    static int on_headers_complete(llhttp_t*) noexcept;

    llhttp_t m_parser {};
    size_t m_max_head_bytes;
    size_t m_consumed = 0;
    State m_state = State::NeedMore;
    std::string m_field;
    bool m_in_host = false;
    std::string m_host;
    int m_host_count = 0;
    char const* m_error_reason = "";
};

}
