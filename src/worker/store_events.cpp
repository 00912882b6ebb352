// The Store's event log: appended in the transaction of the write each
// event records (or alone), read back after a seq for the event stream's
// replay, and pruned to what PROTOCOL.md keeps.
#include "store.h"

#include "worker/store_schema.h"

namespace posta {

Result<int64_t> Store::insert_event(std::string_view type, std::string_view data, int64_t now_ms,
    std::optional<int64_t> message)
{
    int64_t seq = 0;
    auto inserted = m_sql.first(
        "INSERT INTO events (type, data, created_at, message) VALUES (?1, ?2, ?3, ?4) RETURNING seq",
        { type, data, now_ms, optional_param(message) }, [&](SqlRow const& row) { seq = row.integer(0); });
    if (!inserted)
        return inserted.error();
    if (!inserted.value())
        return store_error(path(), "INSERT ... RETURNING gave no row");
    return seq;
}

Result<int64_t> Store::append_event(std::string_view type, std::string_view data, int64_t now_ms)
{
    // Autocommit: one statement is its own transaction.
    return insert_event(type, data, now_ms);
}

Result<std::vector<StoredEvent>> Store::events_after(int64_t after, int limit)
{
    std::vector<StoredEvent> events;
    auto rows = m_sql.each("SELECT seq, type, data, created_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        { after, static_cast<int64_t>(limit) }, [&](SqlRow const& row) {
            events.push_back(StoredEvent { row.integer(0), row.text(1), row.text(2), row.integer(3) });
        });
    if (!rows)
        return rows.error();
    return events;
}

Result<EventRange> Store::event_range()
{
    EventRange range;
    auto found = m_sql.first("SELECT coalesce((SELECT min(seq) FROM events), 0), "
                             "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        {}, [&](SqlRow const& row) { range = EventRange { row.integer(0), row.integer(1) }; });
    if (!found)
        return found.error();
    return range;
}

Result<int64_t> Store::prune_events(int64_t now_ms)
{
    if (auto pruned = m_sql.run("DELETE FROM events WHERE created_at < ?1 AND seq <= "
                                "(SELECT coalesce(max(seq), 0) FROM events) - ?2",
            { now_ms - event_keep_ms, event_keep_count });
        !pruned)
        return pruned.error();
    return static_cast<int64_t>(sqlite3_changes64(db().get()));
}

}
