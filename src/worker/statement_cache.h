// StatementCache: the Store's connection and its prepared statements, in the
// worker of one identity (and `posta-server token`). A statement is prepared
// at its first use, keyed by its SQL text, and kept; every use binds its
// parameters, steps through its rows and resets it on every path out, so no
// read transaction stays open between calls to hold back WAL checkpoints.
#pragma once

#include "common/result.h"
#include "worker/sqlite.h"

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

namespace posta {

// One parameter of a statement: NULL, an integer, text or a blob.
using SqlParam = std::variant<std::nullptr_t, int64_t, std::string_view, std::span<unsigned char const>>;

template<typename T>
SqlParam optional_param(std::optional<T> const& value)
{
    if (!value)
        return nullptr;
    return SqlParam(std::string_view(*value));
}
template<>
inline SqlParam optional_param(std::optional<int64_t> const& value)
{
    if (!value)
        return nullptr;
    return SqlParam(*value);
}

// The current row of a statement, for the row callback; valid only inside it.
class SqlRow {
public:
    explicit SqlRow(SqliteStmt const& stmt)
        : m_stmt(stmt)
    {
    }
    int64_t integer(int column) const { return m_stmt.column_int64(column); }
    std::string text(int column) const { return std::string(m_stmt.column_text(column)); }
    std::string_view text_view(int column) const { return m_stmt.column_text(column); }
    std::optional<int64_t> optional_integer(int column) const;
    std::optional<std::string> optional_text(int column) const;

private:
    SqliteStmt const& m_stmt;
};

class StatementCache {
public:
    using OnRow = std::function<void(SqlRow const&)>;
    // Returns false to stop before the rows that follow.
    using OnRowUntil = std::function<bool(SqlRow const&)>;

    explicit StatementCache(SqliteDb db)
        : m_db(std::move(db))
    {
    }
    StatementCache(StatementCache&&) noexcept = default;
    StatementCache& operator=(StatementCache&&) noexcept = default;

    SqliteDb& db() { return m_db; }
    SqliteDb const& db() const { return m_db; }

    // `sql` must outlive the cache: the queries are string literals.
    //
    // The one row loop: runs `sql` with `params` bound to ?1, ?2, ... and
    // calls `on_row` (when given) for each row, in order. Returns how many
    // rows there were. On an error the rows seen so far were delivered.
    Result<int64_t> each(std::string_view sql, std::initializer_list<SqlParam> params, OnRow const& on_row = {});
    // The same loop, ended early when `on_row` returns false (that row counts).
    Result<int64_t> each_until(std::string_view sql, std::initializer_list<SqlParam> params, OnRowUntil const& on_row);
    // The same, for statements of one row at most: whether there was one.
    Result<bool> first(std::string_view sql, std::initializer_list<SqlParam> params, OnRow const& on_row = {});
    // A statement whose rows, if any, are not needed.
    Result<void> run(std::string_view sql, std::initializer_list<SqlParam> params);

private:
    Result<SqliteStmt*> statement(std::string_view sql);

    SqliteDb m_db;
    // After m_db: statements are finalized before the connection closes. The
    // keys are the statements' SQL texts (string literals of the queries).
    std::unordered_map<std::string_view, SqliteStmt> m_statements;
};

}
