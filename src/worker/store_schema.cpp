// The schema lives here as an ordered list of migration steps; step i brings
// the database from user_version i to i + 1. A step is never edited once
// released: a change is a new step at the end.
//
// Times the server makes are INTEGER milliseconds since the Unix epoch (UTC),
// formatted as RFC 3339 only at the API; `sent_at` is the sender's own text,
// kept as it was signed.
#include "store_schema.h"

#include "common/log.h"

#include <array>
#include <charconv>
#include <string>

namespace posta {

namespace {

constexpr int busy_timeout_ms = 5000;

constexpr std::array<char const*, 3> migrations = {
    // Version 1: what PROTOCOL.md version 1 needs.
    R"sql(
-- Every message of both boxes. (box, sender, id) dedupes forever: rows are
-- never removed; the owner's DELETE leaves a tombstone (deleted = 1, content
-- cleared), so a redelivery of a deleted message is still a duplicate.
CREATE TABLE messages (
    seq          INTEGER PRIMARY KEY,  -- local insertion order; list cursors
    box          TEXT    NOT NULL CHECK (box IN ('inbox', 'sent')),
    sender       TEXT    NOT NULL,     -- the "from" identity URL, canonical
    id           TEXT    NOT NULL,     -- 16 random bytes, base64url
    subject      TEXT    NOT NULL DEFAULT '',
    content_type TEXT    NOT NULL DEFAULT 'text/plain',
    body         TEXT    NOT NULL DEFAULT '',
    sent_at      TEXT    NOT NULL,     -- RFC 3339, as the sender wrote it
    received_at  INTEGER,              -- inbox: when accepted; sent: NULL
    read         INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1)),
    deleted      INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    UNIQUE (box, sender, id)
);
CREATE INDEX messages_by_box ON messages (box, deleted, seq);
CREATE INDEX messages_by_id ON messages (id);

-- One row per recipient of a sent message: its "to" list (in order) and the
-- state of the outbox's delivery to it.
CREATE TABLE deliveries (
    message         INTEGER NOT NULL REFERENCES messages (seq),
    recipient       TEXT    NOT NULL,  -- identity URL, canonical
    position        INTEGER NOT NULL,  -- index in the message's "to" list
    state           TEXT    NOT NULL DEFAULT 'queued'
                            CHECK (state IN ('queued', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,           -- NULL unless queued
    last_status     INTEGER,           -- HTTP status of the last attempt
    last_error      TEXT,              -- error body or transport error
    queued_at       INTEGER NOT NULL,  -- starts the give-up clock
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (message, recipient)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
-- Queue order per recipient: messages arrive in the order they were queued.
CREATE INDEX deliveries_by_recipient ON deliveries (recipient, state, message);

-- The peer cache: identity documents of senders and recipients.
CREATE TABLE peers (
    url          TEXT    PRIMARY KEY,  -- identity URL, canonical
    public_key   TEXT    NOT NULL,     -- 32 bytes, base64url
    name         TEXT    NOT NULL DEFAULT '',
    inbox        TEXT    NOT NULL,
    fetched_at   INTEGER NOT NULL,     -- the cache entry's age (TTL 1 hour)
    refetched_at INTEGER               -- last refetch forced by a bad signature
) WITHOUT ROWID;

-- Owner API tokens. Only a hash is kept; the token is printed once.
CREATE TABLE api_tokens (
    hash         BLOB    PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) WITHOUT ROWID;

-- The event stream. seq is the SSE id: AUTOINCREMENT, so an id is never
-- reused, even after old events are pruned.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    type       TEXT    NOT NULL,       -- message.received | delivery.updated
    data       TEXT    NOT NULL,       -- one line of JSON
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_time ON events (created_at);
)sql",
    // Version 2: a message.received event names its message, so that
    // deleting the message redacts the event (posta-protocol(7), "Delete").
    R"sql(
ALTER TABLE events ADD COLUMN message INTEGER REFERENCES messages (seq);
UPDATE events SET message = (SELECT m.seq FROM messages m WHERE m.box = 'inbox'
        AND m.id = json_extract(events.data, '$.id') AND m.sender = json_extract(events.data, '$.from'))
    WHERE type = 'message.received';
CREATE INDEX events_by_message ON events (message) WHERE message IS NOT NULL;
-- What messages deleted before this version left in their events goes now,
-- in the form EventEncoder::message_deleted() gives.
UPDATE events SET data = json_object('id', json_extract(data, '$.id'), 'box', 'inbox',
        'from', json_extract(data, '$.from'), 'deleted', json('true'))
    WHERE message IN (SELECT seq FROM messages WHERE deleted = 1);
)sql",
    // Version 3: the owner signs in from a browser (posta-protocol(7),
    // "Sessions"). Only hashes of the secrets are kept.
    R"sql(
-- One-time sign-in codes printed by `posta-server login`: a code is deleted
-- when it is redeemed, so it works once.
CREATE TABLE login_codes (
    hash       BLOB    PRIMARY KEY,    -- SHA-256 of the code
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Browser sessions. The cookie holds the secret, the table its hash; id is
-- a separate random name that the API lists and revokes sessions by.
CREATE TABLE sessions (
    hash         BLOB    PRIMARY KEY,  -- SHA-256 of the cookie's secret
    id           TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER               -- noted at most once an hour
) WITHOUT ROWID;
)sql",
};

}

Error store_error(std::string const& path, std::string detail)
{
    return Error::message("inbox.db", std::move(detail), path);
}

int latest_schema_version() { return static_cast<int>(migrations.size()); }

namespace {

// The first column of the one row a PRAGMA answers, as text.
Result<std::string> pragma_value(SqliteDb& db, char const* pragma)
{
    auto stmt = db.prepare(pragma);
    if (!stmt)
        return stmt.error();
    auto row = stmt->step();
    if (!row)
        return row.error();
    if (!row.value())
        return store_error(db.path(), std::string(pragma) + " returned no row");
    return std::string(stmt->column_text(0));
}

}

Result<int> read_user_version(SqliteDb& db)
{
    auto version = pragma_value(db, "PRAGMA user_version");
    if (!version)
        return version.error();
    int out = 0;
    auto [end, ec] = std::from_chars(version->data(), version->data() + version->size(), out);
    if (ec != std::errc() || end != version->data() + version->size())
        return store_error(db.path(), "PRAGMA user_version is not a number");
    return out;
}

Result<void> configure_connection(SqliteDb& db)
{
    // The first statement also tells a file that is not a database apart.
    auto journal = pragma_value(db, "PRAGMA journal_mode=WAL");
    if (!journal)
        return journal.error();
    if (journal.value() != "wal")
        return store_error(db.path(),
            "cannot use WAL journaling (journal_mode is \"" + journal.value() + "\"); keep state_dir on a local filesystem");

    if (sqlite3_busy_timeout(db.get(), busy_timeout_ms) != SQLITE_OK)
        return db.error("sqlite3_busy_timeout");
    // FULL: a commit is on disk before we answer 202 (PROTOCOL.md, step 6).
    // secure_delete: what a delete removes is overwritten in the file, not
    // left in free pages (posta-protocol(7), "Delete").
    // temp_store: the sandbox allows no files outside the identity's folder,
    // so SQLite's temporary tables and sort spills stay in memory.
    return db.exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; "
                   "PRAGMA secure_delete=ON;");
}

Result<void> migrate_schema(SqliteDb& db, int target)
{
    auto version = read_user_version(db);
    if (!version)
        return version.error();
    if (version.value() > latest_schema_version())
        return store_error(db.path(),
            "has schema version " + std::to_string(version.value()) + ", newer than this posta-server knows ("
                + std::to_string(latest_schema_version())
                + "); fix: run the posta-server release that wrote it, or restore inbox.db from a backup");

    for (int next = version.value() + 1; next <= target; ++next) {
        auto transaction = SqliteTransaction::begin(db);
        if (!transaction)
            return transaction.error();
        // Read again under the write lock: someone else (a second worker
        // would be a bug, `posta-server token` is not) may have migrated.
        auto current = read_user_version(db);
        if (!current)
            return current.error();
        if (current.value() >= next)
            continue;
        if (auto applied = db.exec(migrations[static_cast<size_t>(next - 1)]); !applied) {
            Error error = applied.error();
            error.detail += " (schema migration to version " + std::to_string(next) + ")";
            return error;
        }
        std::string set_version = "PRAGMA user_version = " + std::to_string(next);
        if (auto set = db.exec(set_version.c_str()); !set)
            return set.error();
        if (auto committed = transaction->commit(); !committed)
            return committed.error();
        log::info("%s: schema migrated to version %d", db.path().c_str(), next);
    }
    return {};
}

}
