// Result<T, E>: errors as values, for every fallible operation of both
// processes. The default error, Error, names the operation that failed
// (`accept4`, `sqlite3_step`), the code with the domain it belongs to (an
// errno, a SQLite or libuv code, one of our enums) and short context (a path,
// a slug). A code is only ever read together with its domain: an EIO is not a
// SQLITE_BUSY although both are 5. Other error types (a Response for the
// client, a parse's diagnostics) take the place of E where the caller wants
// those rather than an Error. No exceptions cross a C callback.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace posta {

// Where an Error's code comes from, so that nobody tells codes apart by
// their operation's name.
enum class ErrorDomain : uint8_t {
    None,       // no code: the detail says it all (a parse error, a refused value)
    Errno,      // an errno value (libseccomp's -rc included)
    Uv,         // a libuv error, negative (uv_strerror)
    Sqlite,     // a SQLite extended result code
    Curl,       // a CURLcode
    HttpClient, // an HttpClientError (http/http_client.h)
    Peer,       // a PeerProblem (worker/peer_directory.h)
};

// The domain of one of our own code enums; specialised next to each enum
// that travels in an Error (Error::of, Error::code_as).
template<typename Code>
struct ErrorDomainOf;

struct Error {
    ErrorDomain domain = ErrorDomain::None;
    int code = 0;        // meaningful only together with `domain`; 0 for None
    std::string op;      // what was attempted: "open", "sqlite3_step", "keys.json"
    std::string detail;  // why, in words (strerror, sqlite3_errmsg, ...)
    std::string context; // on what: a path, an address, a slug

    Error(ErrorDomain in, int value, std::string what, std::string why, std::string on = {})
        : domain(in)
        , code(value)
        , op(std::move(what))
        , detail(std::move(why))
        , context(std::move(on))
    {
    }

    // The errno of the calling thread, read at once, with strerror as detail.
    static Error from_errno(std::string op, std::string context = {})
    {
        return from_errno_code(errno, std::move(op), std::move(context));
    }
    // An errno value handed back rather than left in errno (libseccomp's -rc).
    static Error from_errno_code(int code, std::string op, std::string context)
    {
        return Error { ErrorDomain::Errno, code, std::move(op), std::strerror(code), std::move(context) };
    }
    static Error message(std::string op, std::string detail, std::string context = {})
    {
        return Error { ErrorDomain::None, 0, std::move(op), std::move(detail), std::move(context) };
    }
    // One of our own code enums (HttpClientError, PeerProblem).
    template<typename Code>
    static Error of(Code code, std::string op, std::string detail, std::string context = {})
    {
        return Error { ErrorDomainOf<Code>::value, static_cast<int>(code), std::move(op), std::move(detail),
            std::move(context) };
    }

    bool is(ErrorDomain d, int c) const { return domain == d && code == c; }

    // The code as one of our enums, or nullopt when it is of another domain.
    template<typename Code>
    std::optional<Code> code_as() const
    {
        if (domain != ErrorDomainOf<Code>::value)
            return std::nullopt;
        return static_cast<Code>(code);
    }

    // One line for operators: "open /var/lib/posta/arne/keys.json: Permission denied".
    std::string text() const
    {
        std::string out = op;
        if (!context.empty())
            out += " " + context;
        if (!detail.empty())
            out += ": " + detail;
        return out;
    }
};

template<typename T, typename E = Error>
class [[nodiscard]] Result {
    static_assert(!std::is_same_v<T, E>, "a Result must tell its value from its error by type");

public:
    Result(T value)
        : m_value(std::in_place_index<0>, std::move(value))
    {
    }
    Result(E error)
        : m_value(std::in_place_index<1>, std::move(error))
    {
    }

    bool ok() const { return m_value.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(m_value); }
    T const& value() const& { return std::get<0>(m_value); }
    T&& value() && { return std::get<0>(std::move(m_value)); }
    T* operator->() { return &value(); }
    T const* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    T const& operator*() const& { return value(); }

    E const& error() const& { return std::get<1>(m_value); }
    E&& error() && { return std::get<1>(std::move(m_value)); }

private:
    std::variant<T, E> m_value;
};

template<typename E>
class [[nodiscard]] Result<void, E> {
public:
    Result() = default;
    Result(E error)
        : m_error(std::move(error))
    {
    }

    bool ok() const { return !m_error; }
    explicit operator bool() const { return ok(); }
    E const& error() const& { return *m_error; }
    E&& error() && { return std::move(*m_error); }

private:
    std::optional<E> m_error;
};

}
