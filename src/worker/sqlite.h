// RAII owners of SQLite handles for the worker's store: SqliteDb owns a
// connection, SqliteStmt a prepared statement, SqliteTransaction one
// transaction. Failures are Results naming the call, the extended result
// code, sqlite3_errmsg and the file. Statements must be finalized before
// their database: keep a SqliteStmt after its SqliteDb, so it dies first.
#pragma once

#include "common/result.h"

#include <cstdint>
#include <span>
#include <sqlite3.h>
#include <string>
#include <string_view>

namespace posta {

class SqliteStmt;

class SqliteDb {
public:
    // sqlite3_open_v2 with `flags` (SQLITE_OPEN_*), extended result codes on.
    static Result<SqliteDb> open(std::string const& path, int flags);

    SqliteDb(SqliteDb&&) noexcept;
    SqliteDb& operator=(SqliteDb&&) noexcept;
    SqliteDb(SqliteDb const&) = delete;
    SqliteDb& operator=(SqliteDb const&) = delete;
    ~SqliteDb();

    sqlite3* get() const { return m_db; }
    std::string const& path() const { return m_path; }

    // Runs one or more statements that return no rows we need.
    Result<void> exec(char const* sql);
    Result<SqliteStmt> prepare(std::string_view sql);

    // The connection's last error, as an Error for the call `op`.
    Error error(std::string op) const;

private:
    SqliteDb(sqlite3* db, std::string path);
    void close();

    sqlite3* m_db = nullptr;
    std::string m_path;
};

class SqliteStmt {
public:
    SqliteStmt(SqliteStmt&&) noexcept;
    SqliteStmt& operator=(SqliteStmt&&) noexcept;
    SqliteStmt(SqliteStmt const&) = delete;
    SqliteStmt& operator=(SqliteStmt const&) = delete;
    ~SqliteStmt();

    // Parameters are 1-based, as in SQLite. Text and blobs are copied.
    Result<void> bind(int index, int64_t value);
    Result<void> bind(int index, std::string_view text);
    Result<void> bind_blob(int index, std::span<unsigned char const> bytes);
    Result<void> bind_null(int index);

    // true: a row is available through the column getters; false: done.
    Result<bool> step();
    // Makes the statement ready to run again; bindings stay.
    void reset();
    // Sets every parameter back to NULL, freeing the bound copies.
    void clear_bindings();

    // Columns are 0-based, as in SQLite; valid until the next step or reset.
    int64_t column_int64(int index) const;
    std::string_view column_text(int index) const;
    bool column_is_null(int index) const;

private:
    friend class SqliteDb;
    explicit SqliteStmt(sqlite3_stmt* stmt);
    Result<void> check_bind(int rc, int index);
    // The connection's last error; the connection is found through the
    // statement, so a SqliteDb may move while its statements live.
    Error error(std::string op) const;

    sqlite3_stmt* m_stmt = nullptr;
};

// Copies the whole of `from`'s main database into `to`'s with SQLite's
// online backup API, in one step: under one read transaction of `from`, so
// the copy is the database as one moment saw it, while other connections
// (in WAL mode) go on writing. Replaces what `to` held.
Result<void> backup_database(SqliteDb& from, SqliteDb& to);

// Whether `error` is SQLite's "the database is busy or locked" (SQLITE_BUSY,
// SQLITE_LOCKED and their extended codes): another connection holds the
// lock, and trying again later may succeed. False for any other domain.
bool is_sqlite_busy(Error const& error);

// BEGIN IMMEDIATE on construction (through begin()); ROLLBACK on destruction
// unless commit() succeeded.
class SqliteTransaction {
public:
    static Result<SqliteTransaction> begin(SqliteDb&);

    SqliteTransaction(SqliteTransaction&&) noexcept;
    SqliteTransaction& operator=(SqliteTransaction&&) = delete;
    SqliteTransaction(SqliteTransaction const&) = delete;
    SqliteTransaction& operator=(SqliteTransaction const&) = delete;
    ~SqliteTransaction();

    Result<void> commit();

private:
    explicit SqliteTransaction(SqliteDb& db)
        : m_db(&db)
    {
    }
    SqliteDb* m_db = nullptr; // null once committed or rolled back
};

}
