#include "sqlite.h"

#include "common/log.h"

#include <utility>

namespace posta {

SqliteDb::SqliteDb(sqlite3* db, std::string path)
    : m_db(db)
    , m_path(std::move(path))
{
}

SqliteDb::SqliteDb(SqliteDb&& other) noexcept
    : m_db(std::exchange(other.m_db, nullptr))
    , m_path(std::move(other.m_path))
{
}

SqliteDb& SqliteDb::operator=(SqliteDb&& other) noexcept
{
    if (this != &other) {
        close();
        m_db = std::exchange(other.m_db, nullptr);
        m_path = std::move(other.m_path);
    }
    return *this;
}

SqliteDb::~SqliteDb() { close(); }

void SqliteDb::close()
{
    sqlite3* db = std::exchange(m_db, nullptr);
    if (!db)
        return;
    if (sqlite3_close(db) != SQLITE_OK) {
        // A statement outlived its database: a broken invariant. Say so, and
        // let SQLite close the connection once the statement is finalized.
        log::error("sqlite3_close %s: %s (a statement was not finalized first)", m_path.c_str(),
            sqlite3_errmsg(db));
        sqlite3_close_v2(db);
    }
}

Result<SqliteDb> SqliteDb::open(std::string const& path, int flags)
{
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    // Even a failed open may hand back a connection that must be closed.
    SqliteDb db(raw, path);
    if (rc != SQLITE_OK) {
        if (!raw)
            return Error { ErrorDomain::Sqlite, rc, "sqlite3_open_v2", sqlite3_errstr(rc), path };
        return db.error("sqlite3_open_v2");
    }
    sqlite3_extended_result_codes(raw, 1);
    return db;
}

Error SqliteDb::error(std::string op) const
{
    if (!m_db)
        return Error::message(std::move(op), "no database connection", m_path);
    return Error { ErrorDomain::Sqlite, sqlite3_extended_errcode(m_db), std::move(op), sqlite3_errmsg(m_db), m_path };
}

Result<void> SqliteDb::exec(char const* sql)
{
    char* message = nullptr;
    int rc = sqlite3_exec(m_db, sql, nullptr, nullptr, &message);
    if (rc == SQLITE_OK)
        return {};
    Error error { ErrorDomain::Sqlite, rc, "sqlite3_exec", message ? message : sqlite3_errstr(rc), m_path };
    sqlite3_free(message);
    return error;
}

Result<void> backup_database(SqliteDb& from, SqliteDb& to)
{
    sqlite3_backup* backup = sqlite3_backup_init(to.get(), "main", from.get(), "main");
    if (!backup)
        return to.error("sqlite3_backup_init");
    int rc = sqlite3_backup_step(backup, -1);
    // finish reports the step's error too, on the destination connection.
    int finished = sqlite3_backup_finish(backup);
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            return Error { ErrorDomain::Sqlite, rc, "sqlite3_backup_step", sqlite3_errstr(rc), from.path() };
        return finished != SQLITE_OK ? to.error("sqlite3_backup_step")
                                     : Error { ErrorDomain::Sqlite, rc, "sqlite3_backup_step", sqlite3_errstr(rc), from.path() };
    }
    if (finished != SQLITE_OK)
        return to.error("sqlite3_backup_finish");
    return {};
}

bool is_sqlite_busy(Error const& error)
{
    if (error.domain != ErrorDomain::Sqlite)
        return false;
    int primary = error.code & 0xff; // an extended code keeps its primary code in the low byte
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

Result<SqliteStmt> SqliteDb::prepare(std::string_view sql)
{
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(m_db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return error("sqlite3_prepare_v2");
    }
    return SqliteStmt(stmt);
}

SqliteStmt::SqliteStmt(sqlite3_stmt* stmt)
    : m_stmt(stmt)
{
}

SqliteStmt::SqliteStmt(SqliteStmt&& other) noexcept
    : m_stmt(std::exchange(other.m_stmt, nullptr))
{
}

SqliteStmt& SqliteStmt::operator=(SqliteStmt&& other) noexcept
{
    if (this != &other) {
        sqlite3_finalize(m_stmt);
        m_stmt = std::exchange(other.m_stmt, nullptr);
    }
    return *this;
}

SqliteStmt::~SqliteStmt() { sqlite3_finalize(m_stmt); }

Error SqliteStmt::error(std::string op) const
{
    sqlite3* db = sqlite3_db_handle(m_stmt);
    char const* file = sqlite3_db_filename(db, "main");
    return Error { ErrorDomain::Sqlite, sqlite3_extended_errcode(db), std::move(op), sqlite3_errmsg(db), file ? file : "" };
}

Result<void> SqliteStmt::check_bind(int rc, int index)
{
    if (rc == SQLITE_OK)
        return {};
    Error failure = error("sqlite3_bind");
    failure.detail += " (parameter " + std::to_string(index) + ")";
    return failure;
}

Result<void> SqliteStmt::bind(int index, int64_t value)
{
    return check_bind(sqlite3_bind_int64(m_stmt, index, value), index);
}

Result<void> SqliteStmt::bind(int index, std::string_view text)
{
    return check_bind(sqlite3_bind_text64(m_stmt, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
        index);
}

Result<void> SqliteStmt::bind_blob(int index, std::span<unsigned char const> bytes)
{
    return check_bind(sqlite3_bind_blob64(m_stmt, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT), index);
}

Result<void> SqliteStmt::bind_null(int index) { return check_bind(sqlite3_bind_null(m_stmt, index), index); }

Result<bool> SqliteStmt::step()
{
    int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW)
        return true;
    if (rc == SQLITE_DONE)
        return false;
    return error("sqlite3_step");
}

void SqliteStmt::reset()
{
    // sqlite3_reset repeats the last step's error, which step() reported.
    sqlite3_reset(m_stmt);
}

int64_t SqliteStmt::column_int64(int index) const { return sqlite3_column_int64(m_stmt, index); }

void SqliteStmt::clear_bindings() { sqlite3_clear_bindings(m_stmt); }

std::string_view SqliteStmt::column_text(int index) const
{
    auto const* text = reinterpret_cast<char const*>(sqlite3_column_text(m_stmt, index));
    if (!text)
        return {};
    return { text, static_cast<size_t>(sqlite3_column_bytes(m_stmt, index)) };
}

bool SqliteStmt::column_is_null(int index) const { return sqlite3_column_type(m_stmt, index) == SQLITE_NULL; }

Result<SqliteTransaction> SqliteTransaction::begin(SqliteDb& db)
{
    if (auto begun = db.exec("BEGIN IMMEDIATE"); !begun)
        return begun.error();
    return SqliteTransaction(db);
}

SqliteTransaction::SqliteTransaction(SqliteTransaction&& other) noexcept
    : m_db(std::exchange(other.m_db, nullptr))
{
}

SqliteTransaction::~SqliteTransaction()
{
    if (!m_db)
        return;
    if (auto rolled_back = m_db->exec("ROLLBACK"); !rolled_back)
        log::error("%s", rolled_back.error().text().c_str());
}

Result<void> SqliteTransaction::commit()
{
    if (!m_db)
        return Error::message("COMMIT", "no transaction is open");
    auto committed = m_db->exec("COMMIT");
    if (committed)
        m_db = nullptr;
    return committed;
}

}
