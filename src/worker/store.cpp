// The schema lives here as an ordered list of migration steps; step i brings
// the database from user_version i to i + 1. A step is never edited once
// released: a change is a new step at the end.
//
// Times the server makes are INTEGER milliseconds since the Unix epoch (UTC),
// formatted as RFC 3339 only at the API; `sent_at` is the sender's own text,
// kept as it was signed.
//
// Every statement is prepared once, at its first use, and kept. A statement
// is reset as soon as its rows are read (StatementUse), so no read
// transaction stays open between calls to hold back WAL checkpoints.
#include "store.h"

#include "common/log.h"
#include "common/unique_fd.h"
#include "protocol/envelope.h"
#include "worker/message_json.h"

#include <array>
#include <cerrno>
#include <fcntl.h>
#include <initializer_list>
#include <sys/stat.h>
#include <variant>

namespace posta {

namespace {

constexpr int busy_timeout_ms = 5000;

constexpr std::array<char const*, 1> migrations = {
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
};

Error store_error(std::string const& path, std::string detail)
{
    return Error::message("inbox.db", std::move(detail), path);
}

Result<int> read_user_version(SqliteDb& db)
{
    auto stmt = db.prepare("PRAGMA user_version");
    if (!stmt)
        return stmt.error();
    auto row = stmt->step();
    if (!row)
        return row.error();
    if (!row.value())
        return store_error(db.path(), "PRAGMA user_version returned no row");
    return static_cast<int>(stmt->column_int64(0));
}

// Resets its statement when it goes out of scope, whatever the path out.
class StatementUse {
public:
    explicit StatementUse(SqliteStmt& stmt)
        : m_stmt(stmt)
    {
    }
    StatementUse(StatementUse const&) = delete;
    StatementUse& operator=(StatementUse const&) = delete;
    ~StatementUse() { m_stmt.reset(); }

private:
    SqliteStmt& m_stmt;
};

using Param = std::variant<std::nullptr_t, int64_t, std::string_view>;

template<typename T>
Param optional_param(std::optional<T> const& value)
{
    if (!value)
        return nullptr;
    return Param(*value);
}

// Binds `params` to ?1, ?2, ... in order.
Result<void> bind_params(SqliteStmt& stmt, std::initializer_list<Param> params)
{
    int index = 1;
    for (auto const& param : params) {
        Result<void> bound;
        if (std::holds_alternative<std::nullptr_t>(param))
            bound = stmt.bind_null(index);
        else if (auto const* number = std::get_if<int64_t>(&param))
            bound = stmt.bind(index, *number);
        else
            bound = stmt.bind(index, std::get<std::string_view>(param));
        if (!bound)
            return bound;
        ++index;
    }
    return {};
}

// Runs a statement that returns no rows we need.
Result<void> run(SqliteStmt& stmt)
{
    StatementUse use(stmt);
    auto row = stmt.step();
    if (!row)
        return row.error();
    return {};
}

std::optional<int64_t> optional_int(SqliteStmt const& stmt, int column)
{
    if (stmt.column_is_null(column))
        return std::nullopt;
    return stmt.column_int64(column);
}

std::optional<std::string> optional_text(SqliteStmt const& stmt, int column)
{
    if (stmt.column_is_null(column))
        return std::nullopt;
    return std::string(stmt.column_text(column));
}

// The columns message_columns selects, in order, read into a StoredMessage.
constexpr char const* message_columns
    = "seq, box, sender, id, subject, content_type, body, sent_at, received_at, read";

StoredMessage read_message(SqliteStmt const& stmt)
{
    StoredMessage message;
    message.seq = stmt.column_int64(0);
    message.box = parse_box(stmt.column_text(1)).value_or(Box::Inbox);
    message.from = std::string(stmt.column_text(2));
    message.id = std::string(stmt.column_text(3));
    message.subject = std::string(stmt.column_text(4));
    message.content_type = std::string(stmt.column_text(5));
    message.body = std::string(stmt.column_text(6));
    message.sent_at = std::string(stmt.column_text(7));
    message.received_at_ms = optional_int(stmt, 8);
    message.read = stmt.column_int64(9) != 0;
    return message;
}

std::string with_message_columns(char const* before, char const* after)
{
    return std::string(before) + message_columns + after;
}

}

// Every query of the store. The order of this enum is the order of
// query_text().
enum class Store::Query : uint8_t {
    InsertInbound,
    InsertEvent,
    FindPeer,
    SavePeer,
    MarkPeerRefetched,
    ListMessages,
    ListMessagesBefore,
    Recipients,
    ResolveMessage,
    MessageBySeq,
    SetRead,
    DeleteMessage,
    CancelDeliveries,
    InsertMessage,
    InsertDelivery,
    ListDeliveries,
    QueueHeads,
    UpdateDelivery,
    InsertToken,
    FindToken,
    TouchToken,
    EventsAfter,
    EventRange,
    PruneEvents,
    Count,
};

std::string Store::query_text(Query query)
{
    switch (query) {
    case Query::InsertInbound:
        // RETURNING yields no row when the conflict clause skipped the insert.
        return "INSERT INTO messages (box, sender, id, subject, content_type, body, sent_at, received_at) "
               "VALUES ('inbox', ?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING RETURNING seq";
    case Query::InsertEvent:
        return "INSERT INTO events (type, data, created_at) VALUES (?1, ?2, ?3) RETURNING seq";
    case Query::FindPeer:
        return "SELECT url, public_key, name, inbox, fetched_at, refetched_at FROM peers WHERE url = ?1";
    case Query::SavePeer:
        return "INSERT INTO peers (url, public_key, name, inbox, fetched_at, refetched_at) "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (url) DO UPDATE SET "
               "public_key = excluded.public_key, name = excluded.name, inbox = excluded.inbox, "
               "fetched_at = excluded.fetched_at, "
               "refetched_at = coalesce(excluded.refetched_at, peers.refetched_at)";
    case Query::MarkPeerRefetched:
        return "UPDATE peers SET refetched_at = ?2 WHERE url = ?1";
    case Query::ListMessages:
        return with_message_columns("SELECT ",
            " FROM messages WHERE box = ?1 AND deleted = 0 ORDER BY seq DESC LIMIT ?2");
    case Query::ListMessagesBefore:
        return with_message_columns("SELECT ",
            " FROM messages WHERE box = ?1 AND deleted = 0 AND seq < ?3 ORDER BY seq DESC LIMIT ?2");
    case Query::Recipients:
        return "SELECT recipient FROM deliveries WHERE message = ?1 ORDER BY position";
    case Query::ResolveMessage:
        return "SELECT seq FROM messages WHERE id = ?1 AND deleted = 0 "
               "AND (?2 IS NULL OR box = ?2) AND (?3 IS NULL OR sender = ?3) ORDER BY seq LIMIT 1";
    case Query::MessageBySeq:
        return with_message_columns("SELECT ", " FROM messages WHERE seq = ?1 AND deleted = 0");
    case Query::SetRead:
        return "UPDATE messages SET read = ?2 WHERE seq = ?1";
    case Query::DeleteMessage:
        return "UPDATE messages SET deleted = 1, subject = '', body = '' WHERE seq = ?1";
    case Query::CancelDeliveries:
        return "UPDATE deliveries SET state = 'failed', next_attempt_at = NULL, "
               "last_error = 'the message was deleted before it was delivered', updated_at = ?2 "
               "WHERE message = ?1 AND state = 'queued' "
               "RETURNING recipient, attempts, last_status, last_error";
    case Query::InsertMessage:
        return "INSERT INTO messages (box, sender, id, subject, content_type, body, sent_at, received_at, read) "
               "VALUES ('sent', ?1, ?2, ?3, ?4, ?5, ?6, NULL, 1) RETURNING seq";
    case Query::InsertDelivery:
        return "INSERT INTO deliveries (message, recipient, position, state, next_attempt_at, queued_at, updated_at) "
               "VALUES (?1, ?2, ?3, 'queued', ?4, ?4, ?4)";
    case Query::ListDeliveries:
        return "SELECT m.id, d.recipient, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error "
               "FROM deliveries d JOIN messages m ON m.seq = d.message "
               "WHERE ?1 IS NULL OR d.state = ?1 ORDER BY d.message, d.position";
    case Query::QueueHeads:
        return "SELECT d.message, m.id, m.sender, d.recipient, m.sent_at, m.subject, m.content_type, m.body, "
               "d.attempts, coalesce(d.next_attempt_at, 0), d.queued_at "
               "FROM deliveries d JOIN messages m ON m.seq = d.message "
               "WHERE d.state = 'queued' AND d.message = (SELECT min(e.message) FROM deliveries e "
               "WHERE e.recipient = d.recipient AND e.state = 'queued') "
               "ORDER BY d.next_attempt_at, d.message";
    case Query::UpdateDelivery:
        return "UPDATE deliveries SET attempts = attempts + 1, state = ?3, next_attempt_at = ?4, "
               "last_status = ?5, last_error = ?6, updated_at = ?7 WHERE message = ?1 AND recipient = ?2 AND state = 'queued' "
               "RETURNING (SELECT id FROM messages WHERE seq = ?1), attempts";
    case Query::InsertToken:
        return "INSERT INTO api_tokens (hash, created_at) VALUES (?1, ?2)";
    case Query::FindToken:
        return "SELECT coalesce(last_used_at, 0) FROM api_tokens WHERE hash = ?1";
    case Query::TouchToken:
        return "UPDATE api_tokens SET last_used_at = ?2 WHERE hash = ?1";
    case Query::EventsAfter:
        return "SELECT seq, type, data, created_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";
    case Query::EventRange:
        return "SELECT coalesce((SELECT min(seq) FROM events), 0), "
               "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)";
    case Query::PruneEvents:
        return "DELETE FROM events WHERE created_at < ?1 AND seq <= "
               "(SELECT coalesce(max(seq), 0) FROM events) - ?2";
    case Query::Count:
        break;
    }
    return {};
}

Store::Store(SqliteDb db)
    : m_db(std::move(db))
    , m_statements(static_cast<size_t>(Query::Count))
{
}

Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

int Store::latest_version() { return static_cast<int>(migrations.size()); }

Result<Store> Store::open(std::string const& dir)
{
    return open_at(dir, latest_version());
}

Result<void> Store::create_at_version(std::string const& dir, int version)
{
    if (version < 0 || version > latest_version())
        return Error::message("create_at_version", "no such schema version: " + std::to_string(version));
    auto store = open_at(dir, version);
    if (!store)
        return store.error();
    return {};
}

Result<Store> Store::open_at(std::string const& dir, int version)
{
    std::string path = dir + "/inbox.db";
    // SQLite would create the file 0644; create it 0600 first. Its -wal and
    // -shm files take the database file's mode.
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd)
        return Error::from_errno("open", path);
    struct stat st {};
    if (::fstat(fd.get(), &st) == 0 && (st.st_mode & 077) != 0)
        log::warn("%s has mode %04o: group or others can read messages; fix: chmod 600 %s", path.c_str(),
            static_cast<unsigned>(st.st_mode & 07777), path.c_str());
    fd.reset();

    auto db = SqliteDb::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
    if (!db)
        return db.error();
    Store store(std::move(db.value()));
    if (auto configured = store.configure(); !configured)
        return configured.error();
    if (auto migrated = store.migrate(version); !migrated)
        return migrated.error();
    return store;
}

Result<void> Store::configure()
{
    // The first statement also tells a file that is not a database apart.
    {
        auto mode = m_db.prepare("PRAGMA journal_mode=WAL");
        if (!mode)
            return mode.error();
        auto row = mode->step();
        if (!row)
            return row.error();
        std::string journal = row.value() ? std::string(mode->column_text(0)) : std::string();
        if (journal != "wal")
            return store_error(path(),
                "cannot use WAL journaling (journal_mode is \"" + journal
                    + "\"); keep state_dir on a local filesystem");
    }

    if (sqlite3_busy_timeout(m_db.get(), busy_timeout_ms) != SQLITE_OK)
        return m_db.error("sqlite3_busy_timeout");
    // FULL: a commit is on disk before we answer 202 (PROTOCOL.md, step 6).
    // temp_store: the sandbox allows no files outside the identity's folder,
    // so SQLite's temporary tables and sort spills stay in memory.
    return m_db.exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;");
}

Result<void> Store::migrate(int target)
{
    auto version = read_user_version(m_db);
    if (!version)
        return version.error();
    if (version.value() > latest_version())
        return store_error(path(),
            "has schema version " + std::to_string(version.value()) + ", newer than this posta-server knows ("
                + std::to_string(latest_version())
                + "); fix: run the posta-server release that wrote it, or restore inbox.db from a backup");

    for (int next = version.value() + 1; next <= target; ++next) {
        auto transaction = SqliteTransaction::begin(m_db);
        if (!transaction)
            return transaction.error();
        // Read again under the write lock: someone else (a second worker
        // would be a bug, `posta-server token` is not) may have migrated.
        auto current = read_user_version(m_db);
        if (!current)
            return current.error();
        if (current.value() >= next)
            continue;
        if (auto applied = m_db.exec(migrations[static_cast<size_t>(next - 1)]); !applied) {
            Error error = applied.error();
            error.detail += " (schema migration to version " + std::to_string(next) + ")";
            return error;
        }
        std::string set_version = "PRAGMA user_version = " + std::to_string(next);
        if (auto set = m_db.exec(set_version.c_str()); !set)
            return set.error();
        if (auto committed = transaction->commit(); !committed)
            return committed.error();
        log::info("%s: schema migrated to version %d", path().c_str(), next);
    }
    return {};
}

Result<int> Store::user_version() { return read_user_version(m_db); }

Result<void> Store::checkpoint()
{
    auto stmt = m_db.prepare("PRAGMA wal_checkpoint(TRUNCATE)");
    if (!stmt)
        return stmt.error();
    auto row = stmt->step();
    if (!row)
        return row.error();
    // Columns: busy (1 when a reader or writer kept it from completing), WAL
    // frames, frames checkpointed.
    if (row.value() && stmt->column_int64(0) != 0)
        return store_error(path(), "checkpoint could not complete: the database is busy");
    return {};
}

Result<SqliteStmt*> Store::statement(Query query)
{
    auto& slot = m_statements.at(static_cast<size_t>(query));
    if (!slot) {
        auto prepared = m_db.prepare(query_text(query));
        if (!prepared)
            return prepared.error();
        slot.emplace(std::move(prepared.value()));
    }
    return &*slot;
}

// -- Inbox -----------------------------------------------------------------

Result<std::vector<InboundOutcome>> Store::accept_inbound(std::span<InboundMessage const> batch, int64_t received_at_ms)
{
    auto insert = statement(Query::InsertInbound);
    if (!insert)
        return insert.error();
    auto transaction = SqliteTransaction::begin(m_db);
    if (!transaction)
        return transaction.error();

    std::vector<InboundOutcome> outcomes;
    outcomes.reserve(batch.size());
    for (auto const& message : batch) {
        std::optional<int64_t> seq;
        {
            SqliteStmt& stmt = **insert;
            StatementUse use(stmt);
            if (auto bound = bind_params(stmt,
                    { std::string_view(message.from), std::string_view(message.id),
                        std::string_view(message.subject), std::string_view(message.content_type),
                        std::string_view(message.body), std::string_view(message.sent_at), received_at_ms });
                !bound)
                return bound.error();
            auto row = stmt.step();
            if (!row)
                return row.error();
            if (row.value())
                seq = stmt.column_int64(0);
        }
        InboundOutcome outcome;
        if (!seq) {
            outcome.duplicate = true;
            outcomes.push_back(std::move(outcome));
            continue;
        }
        StoredMessage stored;
        stored.seq = *seq;
        stored.box = Box::Inbox;
        stored.id = message.id;
        stored.from = message.from;
        stored.subject = message.subject;
        stored.content_type = message.content_type;
        stored.body = message.body;
        stored.sent_at = message.sent_at;
        stored.received_at_ms = received_at_ms;
        outcome.event_data = message_json(stored, message.to);
        auto event = insert_event("message.received", outcome.event_data, received_at_ms);
        if (!event)
            return event.error();
        outcome.event_seq = event.value();
        outcomes.push_back(std::move(outcome));
    }
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return outcomes;
}

// -- Peer cache ------------------------------------------------------------

Result<std::optional<PeerRecord>> Store::find_peer(std::string_view url)
{
    auto stmt = statement(Query::FindPeer);
    if (!stmt)
        return stmt.error();
    SqliteStmt& find = **stmt;
    StatementUse use(find);
    if (auto bound = bind_params(find, { url }); !bound)
        return bound.error();
    auto row = find.step();
    if (!row)
        return row.error();
    if (!row.value())
        return std::optional<PeerRecord>();
    PeerRecord peer;
    peer.url = std::string(find.column_text(0));
    peer.public_key = std::string(find.column_text(1));
    peer.name = std::string(find.column_text(2));
    peer.inbox = std::string(find.column_text(3));
    peer.fetched_at_ms = find.column_int64(4);
    peer.refetched_at_ms = optional_int(find, 5);
    return std::optional<PeerRecord>(std::move(peer));
}

Result<void> Store::save_peer(PeerRecord const& peer)
{
    auto stmt = statement(Query::SavePeer);
    if (!stmt)
        return stmt.error();
    if (auto bound = bind_params(**stmt,
            { std::string_view(peer.url), std::string_view(peer.public_key), std::string_view(peer.name),
                std::string_view(peer.inbox), peer.fetched_at_ms, optional_param(peer.refetched_at_ms) });
        !bound)
        return bound;
    return run(**stmt);
}

Result<void> Store::mark_peer_refetched(std::string_view url, int64_t at_ms)
{
    auto stmt = statement(Query::MarkPeerRefetched);
    if (!stmt)
        return stmt.error();
    if (auto bound = bind_params(**stmt, { url, at_ms }); !bound)
        return bound;
    return run(**stmt);
}

// -- Owner API -------------------------------------------------------------

Result<void> Store::load_recipients(StoredMessage& message)
{
    message.to.clear();
    if (message.box != Box::Sent)
        return {};
    auto stmt = statement(Query::Recipients);
    if (!stmt)
        return stmt.error();
    SqliteStmt& recipients = **stmt;
    StatementUse use(recipients);
    if (auto bound = bind_params(recipients, { message.seq }); !bound)
        return bound;
    while (true) {
        auto row = recipients.step();
        if (!row)
            return row.error();
        if (!row.value())
            return {};
        message.to.emplace_back(recipients.column_text(0));
    }
}

Result<MessagePage> Store::list_messages(Box box, int limit, std::optional<int64_t> before)
{
    auto stmt = statement(before ? Query::ListMessagesBefore : Query::ListMessages);
    if (!stmt)
        return stmt.error();
    MessagePage page;
    {
        SqliteStmt& list = **stmt;
        StatementUse use(list);
        // One more than asked tells whether there is a next page.
        Result<void> bound = before
            ? bind_params(list, { box_name(box), static_cast<int64_t>(limit) + 1, *before })
            : bind_params(list, { box_name(box), static_cast<int64_t>(limit) + 1 });
        if (!bound)
            return bound.error();
        while (true) {
            auto row = list.step();
            if (!row)
                return row.error();
            if (!row.value())
                break;
            page.messages.push_back(read_message(list));
        }
    }
    if (page.messages.size() > static_cast<size_t>(limit)) {
        page.messages.pop_back();
        page.next_before = page.messages.back().seq;
    }
    for (auto& message : page.messages) {
        if (auto loaded = load_recipients(message); !loaded)
            return loaded.error();
    }
    return page;
}

Result<std::optional<int64_t>> Store::resolve(MessageKey key)
{
    auto stmt = statement(Query::ResolveMessage);
    if (!stmt)
        return stmt.error();
    SqliteStmt& resolve_stmt = **stmt;
    StatementUse use(resolve_stmt);
    Param box = key.box ? Param(box_name(*key.box)) : Param(nullptr);
    Param from = key.from ? Param(*key.from) : Param(nullptr);
    if (auto bound = bind_params(resolve_stmt, { key.id, box, from }); !bound)
        return bound.error();
    auto row = resolve_stmt.step();
    if (!row)
        return row.error();
    if (!row.value())
        return std::optional<int64_t>();
    return std::optional<int64_t>(resolve_stmt.column_int64(0));
}

Result<std::optional<StoredMessage>> Store::message_by_seq(int64_t seq)
{
    auto stmt = statement(Query::MessageBySeq);
    if (!stmt)
        return stmt.error();
    std::optional<StoredMessage> message;
    {
        SqliteStmt& get = **stmt;
        StatementUse use(get);
        if (auto bound = bind_params(get, { seq }); !bound)
            return bound.error();
        auto row = get.step();
        if (!row)
            return row.error();
        if (!row.value())
            return message;
        message = read_message(get);
    }
    if (auto loaded = load_recipients(*message); !loaded)
        return loaded.error();
    return message;
}

Result<std::optional<StoredMessage>> Store::find_message(MessageKey key)
{
    auto seq = resolve(key);
    if (!seq)
        return seq.error();
    if (!seq.value())
        return std::optional<StoredMessage>();
    return message_by_seq(*seq.value());
}

Result<std::optional<StoredMessage>> Store::set_read(MessageKey key, bool read)
{
    auto seq = resolve(key);
    if (!seq)
        return seq.error();
    if (!seq.value())
        return std::optional<StoredMessage>();
    auto stmt = statement(Query::SetRead);
    if (!stmt)
        return stmt.error();
    if (auto bound = bind_params(**stmt, { *seq.value(), static_cast<int64_t>(read ? 1 : 0) }); !bound)
        return bound.error();
    if (auto updated = run(**stmt); !updated)
        return updated.error();
    return message_by_seq(*seq.value());
}

Result<DeleteOutcome> Store::delete_message(MessageKey key, int64_t now_ms)
{
    auto erase = statement(Query::DeleteMessage);
    if (!erase)
        return erase.error();
    auto cancel = statement(Query::CancelDeliveries);
    if (!cancel)
        return cancel.error();
    auto transaction = SqliteTransaction::begin(m_db);
    if (!transaction)
        return transaction.error();
    // Resolved under the write lock, so the message cannot change meanwhile.
    auto seq = resolve(key);
    if (!seq)
        return seq.error();
    DeleteOutcome outcome;
    if (!seq.value())
        return outcome;
    outcome.found = true;

    std::vector<DeliveryRecord> cancelled;
    {
        SqliteStmt& stmt = **cancel;
        StatementUse use(stmt);
        if (auto bound = bind_params(stmt, { *seq.value(), now_ms }); !bound)
            return bound.error();
        while (true) {
            auto row = stmt.step();
            if (!row)
                return row.error();
            if (!row.value())
                break;
            DeliveryRecord delivery;
            delivery.message_id = std::string(key.id);
            delivery.to = std::string(stmt.column_text(0));
            delivery.state = DeliveryState::Failed;
            delivery.attempts = stmt.column_int64(1);
            delivery.last_status = optional_int(stmt, 2);
            delivery.last_error = optional_text(stmt, 3);
            cancelled.push_back(std::move(delivery));
        }
    }
    for (auto const& delivery : cancelled) {
        StoredEvent event { 0, "delivery.updated", delivery_json(delivery), now_ms };
        auto appended = insert_event(event.type, event.data, now_ms);
        if (!appended)
            return appended.error();
        event.seq = appended.value();
        outcome.events.push_back(std::move(event));
    }
    if (auto bound = bind_params(**erase, { *seq.value() }); !bound)
        return bound.error();
    if (auto erased = run(**erase); !erased)
        return erased.error();
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return outcome;
}

Result<StoredMessage> Store::create_outgoing(OutgoingMessage const& message, int64_t now_ms)
{
    auto insert_message = statement(Query::InsertMessage);
    if (!insert_message)
        return insert_message.error();
    auto insert_delivery = statement(Query::InsertDelivery);
    if (!insert_delivery)
        return insert_delivery.error();

    StoredMessage stored;
    stored.box = Box::Sent;
    stored.id = make_message_id();
    stored.from = message.from;
    stored.to = message.to;
    stored.subject = message.subject;
    stored.content_type = message.content_type;
    stored.body = message.body;
    stored.sent_at = format_time_ms(now_ms);
    stored.read = true;

    auto transaction = SqliteTransaction::begin(m_db);
    if (!transaction)
        return transaction.error();
    {
        SqliteStmt& stmt = **insert_message;
        StatementUse use(stmt);
        if (auto bound = bind_params(stmt,
                { std::string_view(stored.from), std::string_view(stored.id), std::string_view(stored.subject),
                    std::string_view(stored.content_type), std::string_view(stored.body),
                    std::string_view(stored.sent_at) });
            !bound)
            return bound.error();
        auto row = stmt.step();
        if (!row)
            return row.error();
        if (!row.value())
            return store_error(path(), "INSERT ... RETURNING gave no row");
        stored.seq = stmt.column_int64(0);
    }
    int64_t position = 0;
    for (auto const& recipient : stored.to) {
        if (auto bound = bind_params(**insert_delivery, { stored.seq, std::string_view(recipient), position, now_ms });
            !bound)
            return bound.error();
        if (auto inserted = run(**insert_delivery); !inserted)
            return inserted.error();
        ++position;
    }
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return stored;
}

Result<std::vector<PendingDelivery>> Store::queue_heads()
{
    auto stmt = statement(Query::QueueHeads);
    if (!stmt)
        return stmt.error();
    SqliteStmt& heads = **stmt;
    StatementUse use(heads);
    std::vector<PendingDelivery> pending;
    while (true) {
        auto row = heads.step();
        if (!row)
            return row.error();
        if (!row.value())
            return pending;
        PendingDelivery delivery;
        delivery.message_seq = heads.column_int64(0);
        delivery.message_id = std::string(heads.column_text(1));
        delivery.from = std::string(heads.column_text(2));
        delivery.to = std::string(heads.column_text(3));
        delivery.sent_at = std::string(heads.column_text(4));
        delivery.subject = std::string(heads.column_text(5));
        delivery.content_type = std::string(heads.column_text(6));
        delivery.body = std::string(heads.column_text(7));
        delivery.attempts = heads.column_int64(8);
        delivery.next_attempt_at_ms = heads.column_int64(9);
        delivery.queued_at_ms = heads.column_int64(10);
        pending.push_back(std::move(delivery));
    }
}

Result<std::optional<StoredEvent>> Store::update_delivery(int64_t message_seq, std::string_view to, DeliveryUpdate const& update, int64_t now_ms)
{
    auto stmt = statement(Query::UpdateDelivery);
    if (!stmt)
        return stmt.error();
    auto transaction = SqliteTransaction::begin(m_db);
    if (!transaction)
        return transaction.error();
    DeliveryRecord record;
    record.to = std::string(to);
    record.state = update.state;
    record.next_attempt_at_ms = update.state == DeliveryState::Queued ? update.next_attempt_at_ms : std::nullopt;
    record.last_status = update.last_status;
    record.last_error = update.last_error;
    {
        SqliteStmt& change = **stmt;
        StatementUse use(change);
        std::optional<std::string_view> error;
        if (update.last_error)
            error = *update.last_error;
        if (auto bound = bind_params(change,
                { message_seq, to, delivery_state_name(update.state), optional_param(record.next_attempt_at_ms),
                    optional_param(update.last_status), optional_param(error), now_ms });
            !bound)
            return bound.error();
        auto row = change.step();
        if (!row)
            return row.error();
        if (!row.value())
            return std::optional<StoredEvent> {}; // cancelled meanwhile (its message deleted)
        record.message_id = std::string(change.column_text(0));
        record.attempts = change.column_int64(1);
    }
    StoredEvent event { 0, "delivery.updated", delivery_json(record), now_ms };
    auto appended = insert_event(event.type, event.data, now_ms);
    if (!appended)
        return appended.error();
    event.seq = appended.value();
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return std::optional<StoredEvent>(std::move(event));
}

Result<std::vector<DeliveryRecord>> Store::list_deliveries(std::optional<DeliveryState> state)
{
    auto stmt = statement(Query::ListDeliveries);
    if (!stmt)
        return stmt.error();
    SqliteStmt& list = **stmt;
    StatementUse use(list);
    Param state_param = state ? Param(delivery_state_name(*state)) : Param(nullptr);
    if (auto bound = bind_params(list, { state_param }); !bound)
        return bound.error();
    std::vector<DeliveryRecord> deliveries;
    while (true) {
        auto row = list.step();
        if (!row)
            return row.error();
        if (!row.value())
            return deliveries;
        DeliveryRecord delivery;
        delivery.message_id = std::string(list.column_text(0));
        delivery.to = std::string(list.column_text(1));
        delivery.state = parse_delivery_state(list.column_text(2)).value_or(DeliveryState::Failed);
        delivery.attempts = list.column_int64(3);
        delivery.next_attempt_at_ms = optional_int(list, 4);
        delivery.last_status = optional_int(list, 5);
        delivery.last_error = optional_text(list, 6);
        deliveries.push_back(std::move(delivery));
    }
}

// -- API tokens ------------------------------------------------------------

Result<void> Store::add_token(TokenHash const& hash, int64_t now_ms)
{
    auto stmt = statement(Query::InsertToken);
    if (!stmt)
        return stmt.error();
    if (auto bound = (*stmt)->bind_blob(1, hash); !bound)
        return bound;
    if (auto bound = (*stmt)->bind(2, now_ms); !bound)
        return bound;
    return run(**stmt);
}

Result<bool> Store::verify_token(TokenHash const& hash, int64_t now_ms)
{
    // A lookup by the hash as primary key: whoever times it learns about
    // hashes, not about the token.
    constexpr int64_t touch_interval_ms = 3600 * 1000;
    int64_t last_used = 0;
    {
        auto stmt = statement(Query::FindToken);
        if (!stmt)
            return stmt.error();
        SqliteStmt& find = **stmt;
        StatementUse use(find);
        if (auto bound = find.bind_blob(1, hash); !bound)
            return bound.error();
        auto row = find.step();
        if (!row)
            return row.error();
        if (!row.value())
            return false;
        last_used = find.column_int64(0);
    }
    if (now_ms - last_used >= touch_interval_ms) {
        auto stmt = statement(Query::TouchToken);
        if (!stmt)
            return stmt.error();
        if (auto bound = (*stmt)->bind_blob(1, hash); !bound)
            return bound.error();
        if (auto bound = (*stmt)->bind(2, now_ms); !bound)
            return bound.error();
        // Bookkeeping only: a busy database must not turn a valid token away.
        if (auto touched = run(**stmt); !touched)
            log::warn("%s (noting an API token's use)", touched.error().text().c_str());
    }
    return true;
}

// -- Event log -------------------------------------------------------------

Result<int64_t> Store::insert_event(std::string_view type, std::string_view data, int64_t now_ms)
{
    auto stmt = statement(Query::InsertEvent);
    if (!stmt)
        return stmt.error();
    SqliteStmt& insert = **stmt;
    StatementUse use(insert);
    if (auto bound = bind_params(insert, { type, data, now_ms }); !bound)
        return bound.error();
    auto row = insert.step();
    if (!row)
        return row.error();
    if (!row.value())
        return store_error(path(), "INSERT ... RETURNING gave no row");
    return insert.column_int64(0);
}

Result<int64_t> Store::append_event(std::string_view type, std::string_view data, int64_t now_ms)
{
    // Autocommit: one statement is its own transaction.
    return insert_event(type, data, now_ms);
}

Result<std::vector<StoredEvent>> Store::events_after(int64_t after, int limit)
{
    auto stmt = statement(Query::EventsAfter);
    if (!stmt)
        return stmt.error();
    SqliteStmt& list = **stmt;
    StatementUse use(list);
    if (auto bound = bind_params(list, { after, static_cast<int64_t>(limit) }); !bound)
        return bound.error();
    std::vector<StoredEvent> events;
    while (true) {
        auto row = list.step();
        if (!row)
            return row.error();
        if (!row.value())
            return events;
        events.push_back(StoredEvent { list.column_int64(0), std::string(list.column_text(1)),
            std::string(list.column_text(2)), list.column_int64(3) });
    }
}

Result<EventRange> Store::event_range()
{
    auto stmt = statement(Query::EventRange);
    if (!stmt)
        return stmt.error();
    SqliteStmt& range = **stmt;
    StatementUse use(range);
    auto row = range.step();
    if (!row)
        return row.error();
    if (!row.value())
        return EventRange {};
    return EventRange { range.column_int64(0), range.column_int64(1) };
}

Result<int64_t> Store::prune_events(int64_t now_ms)
{
    auto stmt = statement(Query::PruneEvents);
    if (!stmt)
        return stmt.error();
    if (auto bound = bind_params(**stmt, { now_ms - event_keep_ms, event_keep_count }); !bound)
        return bound.error();
    if (auto pruned = run(**stmt); !pruned)
        return pruned.error();
    return static_cast<int64_t>(sqlite3_changes64(m_db.get()));
}

// -- Names -----------------------------------------------------------------

std::string_view box_name(Box box)
{
    return box == Box::Sent ? "sent" : "inbox";
}

std::optional<Box> parse_box(std::string_view name)
{
    if (name == "inbox")
        return Box::Inbox;
    if (name == "sent")
        return Box::Sent;
    return std::nullopt;
}

std::string_view delivery_state_name(DeliveryState state)
{
    switch (state) {
    case DeliveryState::Queued:
        return "queued";
    case DeliveryState::Delivered:
        return "delivered";
    case DeliveryState::Failed:
        return "failed";
    }
    return "failed";
}

std::optional<DeliveryState> parse_delivery_state(std::string_view name)
{
    if (name == "queued")
        return DeliveryState::Queued;
    if (name == "delivered")
        return DeliveryState::Delivered;
    if (name == "failed")
        return DeliveryState::Failed;
    return std::nullopt;
}

}
