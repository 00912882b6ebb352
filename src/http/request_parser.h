// RequestParser: the requests of one connection, parsed with llhttp one at a
// time. Bytes in, events out: it pauses after every head (for the head check)
// and after every message (for the handler), and refuses a head over
// max_head_bytes (431), a body over max_body_bytes (413) and malformed input
// (400). Trailer fields of a chunked body are dropped, never added to the
// headers (those were checked before the body), and a chunked body's framing
// (chunk sizes, extensions, trailers) may take at most max_head_bytes (413).
// HttpSession owns one per connection and acts on what it reports; it owns
// the Request being read and nothing else. Pure: no I/O, no logging.
#pragma once

#include "http/head_check.h"
#include "http/http_message.h"

#include <cstddef>
#include <llhttp.h>
#include <string>
#include <string_view>

namespace posta {

class RequestParser {
public:
    struct Limits {
        size_t max_head_bytes = 16384;
        size_t max_body_bytes = 1048576;
    };
    enum class Event {
        NeedMore,        // all the input given was used; more is needed
        HeadComplete,    // paused after a head: check it, then read_body()
        MessageComplete, // paused after a whole request: take_request(), then next_request()
        Rejected,        // the input is not a request we accept: rejection(); parse no more
    };
    struct Step {
        Event event;
        size_t consumed; // bytes of the input used, also when paused or rejected
    };

    explicit RequestParser(Limits);
    RequestParser(RequestParser const&) = delete;
    RequestParser& operator=(RequestParser const&) = delete;

    // Parses from the start of `input`. Never parses past max_head_bytes + 1
    // of a head, so a too-large head is refused without reading on.
    Step parse(std::string_view input);
    // Whether parse() has work to do even without new bytes (a request
    // without a body completes after its head with none).
    bool must_parse() const { return m_must_parse; }
    // After HeadComplete, for a head that passed its check: go on into the body.
    void read_body();
    // After MessageComplete and its answer: the next request may begin.
    void next_request();

    // A request's first byte has been parsed (its head timer runs).
    bool message_begun() const { return m_message_begun; }
    // The request being read. After HeadComplete its method, target, version,
    // keep_alive and headers are set.
    Request& request() { return m_request; }
    // Moves the complete request out; request() holds what is left of it
    // until the next request's first byte, which starts a fresh one.
    Request take_request();
    // As the head declared it (set at HeadComplete).
    BodyFraming const& framing() const { return m_framing; }
    Rejection const& rejection() const { return m_rejection; }

private:
    static llhttp_settings_t const* settings();
    static RequestParser& owner_of(llhttp_t*);
    static int on_message_begin(llhttp_t*) noexcept;
    static int on_url(llhttp_t*, char const*, size_t) noexcept;
    static int on_header_field(llhttp_t*, char const*, size_t) noexcept;
    static int on_header_field_complete(llhttp_t*) noexcept;
    static int on_header_value(llhttp_t*, char const*, size_t) noexcept;
    static int on_header_value_complete(llhttp_t*) noexcept;
    static int on_headers_complete(llhttp_t*) noexcept;
    static int on_body(llhttp_t*, char const*, size_t) noexcept;
    static int on_message_complete(llhttp_t*) noexcept;
    void flush_header();
    Step reject(Rejection, size_t consumed);

    enum class Pause { None, HeadersComplete, MessageComplete };

    Limits m_limits;
    llhttp_t m_parser {};
    Pause m_pause = Pause::None;
    bool m_must_parse = false;
    bool m_message_begun = false;
    bool m_in_head = true; // until the head is complete: bytes count as head bytes
    size_t m_head_bytes = 0;
    // Bytes of a chunked body's framing parsed so far: everything consumed
    // after the head that is not body data.
    size_t m_framing_bytes = 0;
    bool m_body_too_large = false;

    Request m_request;
    BodyFraming m_framing;
    std::string m_field;
    std::string m_value;
    bool m_field_complete = false;
    Rejection m_rejection;
};

}
