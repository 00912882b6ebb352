// The Store's life (open, migrate, checkpoint) and its two small tables: the
// peer cache and the API tokens. The message, delivery and event queries are
// in store_messages.cpp, store_deliveries.cpp and store_events.cpp; every
// query goes through the StatementCache's one row loop.
#include "store.h"

#include "common/log.h"
#include "common/unique_fd.h"
#include "worker/identity_dir.h"
#include "worker/store_schema.h"

#include <fcntl.h>
#include <sys/stat.h>

namespace posta {

Store::Store(SqliteDb db)
    : m_sql(std::move(db))
{
}

Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

int Store::latest_version() { return latest_schema_version(); }

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
    // Never through a symlink (SQLite itself opens the database, its -wal
    // and -shm with O_NOFOLLOW too): one could lead this worker, before its
    // sandbox holds, to another identity's messages.
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd && errno == ELOOP)
        return store_error(path, "is a symlink; inbox.db must be a file of its own in the identity folder "
                                 "(replace the link with the file)");
    if (!fd)
        return Error::from_errno("open", path);
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0)
        return Error::from_errno("fstat", path);
    if (!S_ISREG(st.st_mode))
        return store_error(path, "is not a regular file; move it away");
    if (auto owned = check_owner(st, path); !owned)
        return owned.error();
    // SQLite would refuse these too, but with no word of why.
    for (char const* suffix : { "-wal", "-shm", "-journal" }) {
        struct stat side {};
        std::string side_path = path + suffix;
        if (::lstat(side_path.c_str(), &side) == 0 && !S_ISREG(side.st_mode))
            return store_error(side_path, "is not a regular file (a symlink?); move it away while the daemon is "
                                          "stopped (SQLite makes it anew)");
    }
    if ((st.st_mode & 077) != 0)
        log::warn("%s has mode %04o: group or others can read messages; fix: chmod 600 %s", path.c_str(),
            static_cast<unsigned>(st.st_mode & 07777), path.c_str());
    fd.reset();

    auto db = SqliteDb::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW);
    if (!db)
        return db.error();
    Store store(std::move(db.value()));
    if (auto configured = configure_connection(store.db()); !configured)
        return configured.error();
    if (auto migrated = migrate_schema(store.db(), version); !migrated)
        return migrated.error();
    return store;
}

Result<int> Store::user_version() { return read_user_version(db()); }

Result<void> Store::checkpoint()
{
    // Columns: busy (1 when a reader or writer kept it from completing), WAL
    // frames, frames checkpointed.
    bool busy = false;
    auto ran = m_sql.first("PRAGMA wal_checkpoint(TRUNCATE)", {},
        [&](SqlRow const& row) { busy = row.integer(0) != 0; });
    if (!ran)
        return ran.error();
    if (busy)
        return store_error(path(), "checkpoint could not complete: the database is busy");
    return {};
}

// -- Peer cache ------------------------------------------------------------

Result<std::optional<PeerRecord>> Store::find_peer(std::string_view url)
{
    std::optional<PeerRecord> peer;
    auto found = m_sql.first("SELECT url, public_key, name, inbox, fetched_at, refetched_at FROM peers WHERE url = ?1",
        { url }, [&](SqlRow const& row) {
            peer = PeerRecord { row.text(0), row.text(1), row.text(2), row.text(3), row.integer(4),
                row.optional_integer(5) };
        });
    if (!found)
        return found.error();
    return peer;
}

Result<void> Store::save_peer(PeerRecord const& peer)
{
    return m_sql.run("INSERT INTO peers (url, public_key, name, inbox, fetched_at, refetched_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (url) DO UPDATE SET "
                     "public_key = excluded.public_key, name = excluded.name, inbox = excluded.inbox, "
                     "fetched_at = excluded.fetched_at, "
                     "refetched_at = coalesce(excluded.refetched_at, peers.refetched_at)",
        { std::string_view(peer.url), std::string_view(peer.public_key), std::string_view(peer.name),
            std::string_view(peer.inbox), peer.fetched_at_ms, optional_param(peer.refetched_at_ms) });
}

Result<void> Store::mark_peer_refetched(std::string_view url, int64_t at_ms)
{
    return m_sql.run("UPDATE peers SET refetched_at = ?2 WHERE url = ?1", { url, at_ms });
}

// -- API tokens ------------------------------------------------------------

Result<void> Store::add_token(TokenHash const& hash, int64_t now_ms)
{
    return m_sql.run("INSERT INTO api_tokens (hash, created_at) VALUES (?1, ?2)",
        { std::span<unsigned char const>(hash), now_ms });
}

Result<bool> Store::verify_token(TokenHash const& hash, int64_t now_ms)
{
    // A lookup by the hash as primary key: whoever times it learns about
    // hashes, not about the token.
    std::span<unsigned char const> key(hash);
    int64_t last_used = 0;
    auto found = m_sql.first("SELECT coalesce(last_used_at, 0) FROM api_tokens WHERE hash = ?1", { key },
        [&](SqlRow const& row) { last_used = row.integer(0); });
    if (!found)
        return found.error();
    if (!found.value())
        return false;
    if (now_ms - last_used >= use_note_interval_ms) {
        // Bookkeeping only: a busy database must not turn a valid token away.
        auto touched = m_sql.run("UPDATE api_tokens SET last_used_at = ?2 WHERE hash = ?1", { key, now_ms });
        if (!touched)
            log::warn("%s (noting an API token's use)", touched.error().text().c_str());
    }
    return true;
}

}
