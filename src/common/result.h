// Result<T>: errors as values, for every fallible operation of both processes.
// An Error names the operation that failed (`accept4`, `sqlite3_step`), the
// library's code (errno, SQLite, llhttp) and short context (a path, a slug).
// No exceptions cross a C callback; code that can fail returns one of these.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace posta {

struct Error {
    std::string op;      // what was attempted: "open", "sqlite3_step", "keys.json"
    int code = 0;        // errno, SQLite or llhttp code; 0 when there is none
    std::string detail;  // why, in words (strerror, sqlite3_errmsg, ...)
    std::string context; // on what: a path, an address, a slug

    // The errno of the calling thread, read at once, with strerror as detail.
    static Error from_errno(std::string op, std::string context = {})
    {
        int saved = errno;
        return Error { std::move(op), saved, std::strerror(saved), std::move(context) };
    }
    static Error message(std::string op, std::string detail, std::string context = {})
    {
        return Error { std::move(op), 0, std::move(detail), std::move(context) };
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

template<typename T>
class [[nodiscard]] Result {
public:
    Result(T value)
        : m_value(std::move(value))
    {
    }
    Result(Error error)
        : m_value(std::move(error))
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

    Error const& error() const { return std::get<1>(m_value); }

private:
    std::variant<T, Error> m_value;
};

template<>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error)
        : m_error(std::move(error))
        , m_failed(true)
    {
    }

    bool ok() const { return !m_failed; }
    explicit operator bool() const { return ok(); }
    Error const& error() const { return m_error; }

private:
    Error m_error;
    bool m_failed = false;
};

}
