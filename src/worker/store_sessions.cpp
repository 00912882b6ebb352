// The Store's sign-in codes and browser sessions (worker/sign_in.h says what
// they are for). Both tables are keyed by the SHA-256 of the secret; a
// lookup by the hash as primary key tells whoever times it about hashes,
// not about the secret.
#include "store.h"

#include "common/log.h"

namespace posta {

namespace {

SessionRecord session_from(SqlRow const& row)
{
    return SessionRecord { row.text(0), row.integer(1), row.integer(2), row.optional_integer(3) };
}

}

Result<void> Store::add_login_code(TokenHash const& hash, int64_t now_ms, int64_t expires_at_ms)
{
    auto transaction = SqliteTransaction::begin(db());
    if (!transaction)
        return transaction.error();
    if (auto pruned = m_sql.run("DELETE FROM login_codes WHERE expires_at <= ?1", { now_ms }); !pruned)
        return pruned.error();
    if (auto added = m_sql.run("INSERT INTO login_codes (hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
            { std::span<unsigned char const>(hash), now_ms, expires_at_ms });
        !added)
        return added.error();
    return transaction->commit();
}

Result<bool> Store::redeem_login_code(TokenHash const& code, TokenHash const& session_hash,
    SessionRecord const& session, int64_t now_ms)
{
    auto transaction = SqliteTransaction::begin(db());
    if (!transaction)
        return transaction.error();
    std::optional<int64_t> expires_at;
    auto deleted = m_sql.first("DELETE FROM login_codes WHERE hash = ?1 RETURNING expires_at",
        { std::span<unsigned char const>(code) }, [&](SqlRow const& row) { expires_at = row.integer(0); });
    if (!deleted)
        return deleted.error();
    bool live = expires_at && now_ms < *expires_at;
    if (live) {
        if (auto added = add_session(session_hash, session, now_ms); !added)
            return added.error();
    }
    // An expired code is deleted too: it is of no use to anyone.
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return live;
}

Result<void> Store::add_session(TokenHash const& hash, SessionRecord const& session, int64_t now_ms)
{
    if (auto pruned = m_sql.run("DELETE FROM sessions WHERE expires_at <= ?1", { now_ms }); !pruned)
        return pruned.error();
    return m_sql.run("INSERT INTO sessions (hash, id, created_at, expires_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        { std::span<unsigned char const>(hash), std::string_view(session.id), session.created_at_ms,
            session.expires_at_ms, optional_param(session.last_seen_at_ms) });
}

Result<std::optional<SessionRecord>> Store::find_session(TokenHash const& hash, int64_t now_ms)
{
    std::span<unsigned char const> key(hash);
    std::optional<SessionRecord> found;
    auto row = m_sql.first(
        "SELECT id, created_at, expires_at, last_seen_at FROM sessions WHERE hash = ?1 AND expires_at > ?2",
        { key, now_ms }, [&](SqlRow const& r) { found = session_from(r); });
    if (!row)
        return row.error();
    if (found && now_ms - found->last_seen_at_ms.value_or(0) >= use_note_interval_ms) {
        // Bookkeeping only: a busy database must not sign the owner out.
        if (auto touched = m_sql.run("UPDATE sessions SET last_seen_at = ?2 WHERE hash = ?1", { key, now_ms }); !touched)
            log::warn("%s (noting a session's use)", touched.error().text().c_str());
        else
            found->last_seen_at_ms = now_ms;
    }
    return found;
}

Result<std::vector<SessionRecord>> Store::list_sessions(int64_t now_ms)
{
    std::vector<SessionRecord> sessions;
    auto rows = m_sql.each("SELECT id, created_at, expires_at, last_seen_at FROM sessions WHERE expires_at > ?1 "
                           "ORDER BY created_at, id",
        { now_ms }, [&](SqlRow const& row) { sessions.push_back(session_from(row)); });
    if (!rows)
        return rows.error();
    return sessions;
}

Result<bool> Store::delete_session(std::string_view id, int64_t now_ms)
{
    auto deleted = m_sql.first("DELETE FROM sessions WHERE id = ?1 AND expires_at > ?2 RETURNING id", { id, now_ms });
    if (!deleted)
        return deleted.error();
    return deleted.value();
}

}
