// Store: the identity's SQLite database, <state_dir>/<slug>/inbox.db, opened
// by that identity's worker alone (and by `posta-server token`). It owns the
// connection, applies the schema migrations on open, and will hold the
// queries of the inbox, the outbox loop, the API and the event hub.
#pragma once

#include "common/result.h"
#include "sqlite.h"

#include <string>

namespace posta {

class Store {
public:
    // Opens (creating it 0600 when missing) `dir`/inbox.db in WAL mode with
    // synchronous=FULL, busy_timeout 5 s and foreign keys on, then migrates
    // it to latest_version(), one transaction per step. A database whose
    // schema is newer than this code knows is refused: we would not know
    // what our writes break.
    static Result<Store> open(std::string const& dir);

    // The schema version this code creates and understands.
    static int latest_version();

    Store(Store&&) noexcept = default;
    Store& operator=(Store&&) noexcept = default;

    // PRAGMA user_version: the schema version the file is at.
    Result<int> user_version();

    // Moves everything from the WAL into the database file and truncates the
    // WAL, so a stopped identity is one self-contained file to back up or
    // move. Called at graceful stop.
    Result<void> checkpoint();

    SqliteDb& db() { return m_db; }
    std::string const& path() const { return m_db.path(); }

private:
    explicit Store(SqliteDb db)
        : m_db(std::move(db))
    {
    }
    Result<void> configure();
    Result<void> migrate();

    // Prepared statements of later issues go after m_db, so that they are
    // finalized before the connection closes.
    SqliteDb m_db;
};

}
