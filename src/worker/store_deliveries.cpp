// The Store's deliveries: the outbox's queue (the head of each recipient's
// queue, ids and times only; the content of one message when its attempt
// starts; one attempt's outcome with its delivery.updated event) and the
// owner API's list of them.
#include "store.h"

namespace posta {

Result<std::vector<PendingDelivery>> Store::queue_heads()
{
    std::vector<PendingDelivery> pending;
    auto rows = m_sql.each(
        "SELECT d.message, m.id, d.recipient, d.attempts, coalesce(d.next_attempt_at, 0), d.queued_at "
        "FROM deliveries d JOIN messages m ON m.seq = d.message "
        "WHERE d.state = 'queued' AND d.message = (SELECT min(e.message) FROM deliveries e "
        "WHERE e.recipient = d.recipient AND e.state = 'queued') "
        "ORDER BY d.next_attempt_at, d.message",
        {}, [&](SqlRow const& row) {
            pending.push_back(PendingDelivery { row.integer(0), row.text(1), row.text(2), row.integer(3), row.integer(4), row.integer(5) });
        });
    if (!rows)
        return rows.error();
    return pending;
}

Result<OutboxCounts> Store::outbox_counts()
{
    OutboxCounts counts;
    auto rows = m_sql.each("SELECT state, count(*) FROM deliveries GROUP BY state", {}, [&](SqlRow const& row) {
        std::string state = row.text(0);
        int64_t n = row.integer(1);
        if (state == "queued")
            counts.queued = n;
        else if (state == "delivered")
            counts.delivered = n;
        else if (state == "failed")
            counts.failed = n;
    });
    if (!rows)
        return rows.error();
    if (counts.queued == 0)
        return counts;
    auto oldest = m_sql.first("SELECT min(queued_at) FROM deliveries WHERE state = 'queued'", {},
        [&](SqlRow const& row) { counts.oldest_queued_at_ms = row.integer(0); });
    if (!oldest)
        return oldest.error();
    return counts;
}

Result<std::optional<OutgoingContent>> Store::outgoing_content(int64_t message_seq)
{
    std::optional<OutgoingContent> content;
    auto found = m_sql.first("SELECT sent_at, subject, content_type, body FROM messages "
                             "WHERE seq = ?1 AND box = 'sent' AND deleted = 0",
        { message_seq }, [&](SqlRow const& row) {
            content = OutgoingContent { row.text(0), row.text(1), row.text(2), row.text(3) };
        });
    if (!found)
        return found.error();
    return content;
}

Result<std::optional<StoredEvent>> Store::update_delivery(int64_t message_seq, std::string_view to,
    DeliveryUpdate const& update, int64_t now_ms, EventEncoder const& events)
{
    auto transaction = SqliteTransaction::begin(db());
    if (!transaction)
        return transaction.error();
    // Filled from the row the update returns; until then it holds the
    // retry time to bind (GCC 12 warns of a lone optional's copy here).
    DeliveryRecord record;
    record.next_attempt_at_ms = update.state == DeliveryState::Queued ? update.next_attempt_at_ms : std::nullopt;
    auto changed = m_sql.first(
        "UPDATE deliveries SET attempts = attempts + 1, state = ?3, next_attempt_at = ?4, "
        "last_status = ?5, last_error = ?6, updated_at = ?7 WHERE message = ?1 AND recipient = ?2 AND state = 'queued' "
        "RETURNING (SELECT id FROM messages WHERE seq = ?1), recipient, state, attempts, next_attempt_at, "
        "last_status, last_error",
        { message_seq, to, delivery_state_name(update.state), optional_param(record.next_attempt_at_ms),
            optional_param(update.last_status), optional_param(update.last_error), now_ms },
        [&](SqlRow const& row) { record = delivery_from_row(row); });
    if (!changed)
        return changed.error();
    if (!changed.value())
        return std::optional<StoredEvent> {}; // cancelled meanwhile (its message deleted)
    auto event = append_delivery_updated(record, now_ms, events);
    if (!event)
        return event.error();
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return std::optional<StoredEvent>(std::move(event.value()));
}

Result<std::vector<DeliveryRecord>> Store::list_deliveries(std::optional<DeliveryState> state)
{
    SqlParam state_param = state ? SqlParam(delivery_state_name(*state)) : SqlParam(nullptr);
    std::vector<DeliveryRecord> deliveries;
    auto rows = m_sql.each(
        "SELECT m.id, d.recipient, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error "
        "FROM deliveries d JOIN messages m ON m.seq = d.message "
        "WHERE ?1 IS NULL OR d.state = ?1 ORDER BY d.message, d.position",
        { state_param }, [&](SqlRow const& row) { deliveries.push_back(delivery_from_row(row)); });
    if (!rows)
        return rows.error();
    return deliveries;
}

DeliveryRecord Store::delivery_from_row(SqlRow const& row)
{
    return DeliveryRecord { row.text(0), row.text(1), parse_delivery_state(row.text_view(2)).value_or(DeliveryState::Failed),
        row.integer(3), row.optional_integer(4), row.optional_integer(5), row.optional_text(6) };
}

Result<StoredEvent> Store::append_delivery_updated(DeliveryRecord const& delivery, int64_t now_ms,
    EventEncoder const& events)
{
    StoredEvent event { 0, "delivery.updated", events.delivery_updated(delivery), now_ms };
    auto appended = insert_event(event.type, event.data, now_ms);
    if (!appended)
        return appended.error();
    event.seq = appended.value();
    return event;
}

}
