// The schema of inbox.db and its migrations, for the Store: the connection's
// settings (WAL, synchronous=FULL, busy timeout, foreign keys, temp storage
// in memory) and the ordered steps that bring a database from any earlier
// version to the latest. Functions over a connection the caller owns.
#pragma once

#include "common/result.h"
#include "worker/sqlite.h"

namespace posta {

// The schema version this code creates and understands.
int latest_schema_version();

// PRAGMA user_version: the schema version the file is at.
Result<int> read_user_version(SqliteDb&);

// Sets the connection up; refuses a file that is not a database or cannot
// use WAL journaling (a network filesystem).
Result<void> configure_connection(SqliteDb&);

// Brings the schema from its version up to `target`, one transaction per
// step. A database whose schema is newer than this code knows is refused:
// we would not know what our writes break.
Result<void> migrate_schema(SqliteDb&, int target);

// An error about inbox.db itself, naming the file.
Error store_error(std::string const& path, std::string detail);

}
