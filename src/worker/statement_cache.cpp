#include "statement_cache.h"

namespace posta {

std::optional<int64_t> SqlRow::optional_integer(int column) const
{
    if (m_stmt.column_is_null(column))
        return std::nullopt;
    return m_stmt.column_int64(column);
}

std::optional<std::string> SqlRow::optional_text(int column) const
{
    if (m_stmt.column_is_null(column))
        return std::nullopt;
    return std::string(m_stmt.column_text(column));
}

Result<SqliteStmt*> StatementCache::statement(std::string_view sql)
{
    auto it = m_statements.find(sql);
    if (it == m_statements.end()) {
        auto prepared = m_db.prepare(sql);
        if (!prepared)
            return prepared.error();
        it = m_statements.emplace(sql, std::move(prepared.value())).first;
    }
    return &it->second;
}

Result<int64_t> StatementCache::each(std::string_view sql, std::initializer_list<SqlParam> params, OnRow const& on_row)
{
    return each_until(sql, params, [&](SqlRow const& row) {
        if (on_row)
            on_row(row);
        return true;
    });
}

Result<int64_t> StatementCache::each_until(std::string_view sql, std::initializer_list<SqlParam> params,
    OnRowUntil const& on_row)
{
    auto prepared = statement(sql);
    if (!prepared)
        return prepared.error();
    SqliteStmt& stmt = *prepared.value();
    // Reset on every path out, and the bound copies (a message body) freed.
    struct Use {
        SqliteStmt& stmt;
        ~Use() { stmt.reset(), stmt.clear_bindings(); }
    } use { stmt };

    int index = 1;
    for (auto const& param : params) {
        Result<void> bound;
        if (std::holds_alternative<std::nullptr_t>(param))
            bound = stmt.bind_null(index);
        else if (auto const* number = std::get_if<int64_t>(&param))
            bound = stmt.bind(index, *number);
        else if (auto const* text = std::get_if<std::string_view>(&param))
            bound = stmt.bind(index, *text);
        else
            bound = stmt.bind_blob(index, std::get<std::span<unsigned char const>>(param));
        if (!bound)
            return bound.error();
        ++index;
    }
    int64_t rows = 0;
    while (true) {
        auto row = stmt.step();
        if (!row)
            return row.error();
        if (!row.value())
            return rows;
        ++rows;
        if (!on_row(SqlRow(stmt)))
            return rows;
    }
}

Result<bool> StatementCache::first(std::string_view sql, std::initializer_list<SqlParam> params, OnRow const& on_row)
{
    auto rows = each(sql, params, on_row);
    if (!rows)
        return rows.error();
    return rows.value() > 0;
}

Result<void> StatementCache::run(std::string_view sql, std::initializer_list<SqlParam> params)
{
    auto rows = each(sql, params);
    if (!rows)
        return rows.error();
    return {};
}

}
