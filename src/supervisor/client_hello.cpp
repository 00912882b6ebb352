#include "client_hello.h"

#include <cstdint>

namespace posta {

namespace {

constexpr uint8_t record_handshake = 22;
constexpr uint8_t handshake_client_hello = 1;
constexpr size_t record_header_bytes = 5;
constexpr size_t handshake_header_bytes = 4;
// A plaintext record's fragment is at most 2^14 bytes (RFC 8446, 5.1).
constexpr size_t max_fragment = 16384;
constexpr uint16_t extension_server_name = 0;
constexpr uint8_t name_type_host_name = 0;
constexpr size_t max_host_name = 255;

bool host_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
        || c == '.';
}

// Reads the bytes of the handshake layer one at a time, across the record
// boundaries, checking each record header as it reaches it. Once a read
// fails, `state` says why and every later read fails the same way.
class HandshakeReader {
public:
    HandshakeReader(std::string_view bytes, size_t max_bytes)
        : m_bytes(bytes)
        , m_max(max_bytes)
    {
    }

    using State = ClientHelloPeek::State;

    bool byte(uint8_t& out)
    {
        if (m_stopped)
            return false;
        if (m_pos == m_fragment_end && !open_record())
            return false;
        if (m_pos >= m_bytes.size())
            return stop(State::NeedMore);
        out = static_cast<uint8_t>(m_bytes[m_pos++]);
        return true;
    }

    // A big-endian number of `width` bytes, counted against `budget` (the
    // bytes left in the enclosing vector or message).
    bool number(size_t width, size_t& budget, size_t& out)
    {
        if (width > budget)
            return bad("a length runs past its enclosing vector");
        budget -= width;
        out = 0;
        for (size_t i = 0; i < width; ++i) {
            uint8_t b = 0;
            if (!byte(b))
                return false;
            out = out << 8 | b;
        }
        return true;
    }

    bool skip(size_t count, size_t& budget)
    {
        if (count > budget)
            return bad("a length runs past its enclosing vector");
        budget -= count;
        uint8_t ignored = 0;
        for (size_t i = 0; i < count; ++i)
            if (!byte(ignored))
                return false;
        return true;
    }

    bool bad(char const* reason)
    {
        if (!m_stopped)
            m_reason = reason;
        return stop(State::NotClientHello);
    }

    // Ends the reading for good: the first reason given stays.
    bool stop(State state)
    {
        if (!m_stopped)
            m_state = state;
        m_stopped = true;
        return false;
    }

    // Whether the message of `length` bytes after the current position can
    // still end within the bound (each record costs a header).
    bool fits(size_t length) const { return m_pos + length <= m_max; }

    bool stopped() const { return m_stopped; }
    State state() const { return m_state; }
    char const* reason() const { return m_reason; }

private:
    bool open_record()
    {
        // Judge what is there of the header as early as it arrives: a
        // stranger who sent one wrong byte is told at once.
        std::string_view header = m_bytes.substr(m_pos, record_header_bytes);
        if (!header.empty() && static_cast<uint8_t>(header[0]) != record_handshake)
            return bad("not a TLS handshake record");
        if (header.size() > 1 && static_cast<uint8_t>(header[1]) != 3)
            return bad("not a TLS record version (3.x)");
        if (m_pos + record_header_bytes > m_max)
            return stop(State::TooLarge);
        if (header.size() < record_header_bytes)
            return stop(State::NeedMore);
        size_t length = static_cast<uint8_t>(header[3]) << 8 | static_cast<uint8_t>(header[4]);
        if (length == 0)
            return bad("an empty handshake record");
        if (length > max_fragment)
            return bad("a record longer than 2^14 bytes");
        m_pos += record_header_bytes;
        m_fragment_end = m_pos + length;
        if (m_fragment_end > m_max)
            return stop(State::TooLarge);
        return true;
    }

    std::string_view m_bytes;
    size_t m_max;
    size_t m_pos = 0;
    size_t m_fragment_end = 0;
    bool m_stopped = false;
    State m_state = State::NeedMore;
    char const* m_reason = "";
};

// Reads the server_name extension's body (RFC 6066, section 3) into `out`.
bool read_server_name(HandshakeReader& in, size_t budget, ClientHelloPeek& out)
{
    size_t list = 0;
    if (!in.number(2, budget, list))
        return false;
    if (list != budget || list == 0)
        return in.bad("server_name list length does not match its extension");
    bool have_host = false;
    while (budget > 0) {
        size_t type = 0;
        size_t length = 0;
        if (!in.number(1, budget, type) || !in.number(2, budget, length))
            return false;
        if (type != name_type_host_name) {
            if (!in.skip(length, budget))
                return false;
            continue;
        }
        if (have_host)
            return in.bad("two host_names in server_name");
        have_host = true;
        if (length == 0 || length > max_host_name)
            return in.bad("host_name empty or longer than 255 bytes");
        if (length > budget)
            return in.bad("host_name runs past its extension");
        for (size_t i = 0; i < length; ++i) {
            size_t c = 0;
            if (!in.number(1, budget, c))
                return false;
            if (!host_name_char(static_cast<unsigned char>(c)))
                return in.bad("host_name has a byte that is not a letter, digit, '-', '_' or '.'");
            out.name_buffer[i] = static_cast<char>(c);
        }
        if (out.name_buffer[0] == '.' || out.name_buffer[length - 1] == '.')
            return in.bad("host_name begins or ends with a dot");
        out.name_length = length;
    }
    if (!have_host)
        return in.bad("server_name without a host_name");
    return true;
}

}

ClientHelloPeek read_client_hello(std::string_view bytes, size_t max_bytes)
{
    ClientHelloPeek out;
    HandshakeReader in(bytes, max_bytes);
    auto finish = [&](ClientHelloPeek::State done) {
        // A failed read left its state and reason in the reader; a complete
        // read says what it found.
        out.state = in.stopped() ? in.state() : done;
        out.reason = in.reason();
        if (out.state != ClientHelloPeek::State::ServerName)
            out.name_length = 0;
        return out;
    };

    // Handshake header: msg_type, then a 24-bit length (RFC 8446, 4).
    size_t header_budget = handshake_header_bytes;
    size_t type = 0;
    size_t length = 0;
    if (!in.number(1, header_budget, type))
        return finish({});
    if (type != handshake_client_hello) {
        in.bad("the first handshake message is not a ClientHello");
        return finish({});
    }
    if (!in.number(3, header_budget, length))
        return finish({});
    if (!in.fits(length)) {
        in.stop(ClientHelloPeek::State::TooLarge);
        return finish({});
    }

    // ClientHello (RFC 8446, 4.1.2; RFC 5246, 7.4.1.2): legacy_version,
    // random, legacy_session_id<0..32>, cipher_suites<2..2^16-2>,
    // legacy_compression_methods<1..2^8-1>, then extensions<8..2^16-1>,
    // which TLS 1.2 lets a client leave out entirely.
    size_t budget = length;
    size_t major = 0;
    size_t field = 0;
    if (!in.number(1, budget, major) || !in.skip(1, budget))
        return finish({});
    if (major != 3) {
        in.bad("ClientHello legacy_version is not 3.x");
        return finish({});
    }
    if (!in.skip(32, budget) || !in.number(1, budget, field))
        return finish({});
    if (field > 32) {
        in.bad("legacy_session_id longer than 32 bytes");
        return finish({});
    }
    if (!in.skip(field, budget) || !in.number(2, budget, field))
        return finish({});
    if (field < 2 || field % 2 != 0) {
        in.bad("cipher_suites empty or of odd length");
        return finish({});
    }
    if (!in.skip(field, budget) || !in.number(1, budget, field))
        return finish({});
    if (field < 1) {
        in.bad("no compression method");
        return finish({});
    }
    if (!in.skip(field, budget))
        return finish({});
    if (budget == 0)
        return finish(ClientHelloPeek::State::NoServerName);

    size_t extensions = 0;
    if (!in.number(2, budget, extensions))
        return finish({});
    if (extensions != budget) {
        in.bad("extensions length does not match the ClientHello");
        return finish({});
    }
    bool seen_server_name = false;
    while (budget > 0) {
        size_t ext_type = 0;
        size_t ext_length = 0;
        if (!in.number(2, budget, ext_type) || !in.number(2, budget, ext_length))
            return finish({});
        if (ext_length > budget) {
            in.bad("an extension runs past the ClientHello");
            return finish({});
        }
        budget -= ext_length;
        if (ext_type != extension_server_name) {
            size_t all = ext_length;
            if (!in.skip(ext_length, all))
                return finish({});
            continue;
        }
        if (seen_server_name) {
            in.bad("two server_name extensions");
            return finish({});
        }
        seen_server_name = true;
        if (!read_server_name(in, ext_length, out))
            return finish({});
    }
    return finish(seen_server_name ? ClientHelloPeek::State::ServerName : ClientHelloPeek::State::NoServerName);
}

}
