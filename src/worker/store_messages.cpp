// The Store's messages of both boxes: what the inbox accepts (group commit
// with one message.received event per new message), what the owner sends
// (with its queued deliveries), and the owner API's reads, read flag and
// delete (a tombstone that keeps dedupe and cancels queued deliveries).
#include "store.h"

#include "protocol/envelope.h"
#include "protocol/timestamp.h"
#include "worker/store_schema.h"

#include <chrono>

namespace posta {

namespace {

// The columns every message query selects, in read_message()'s order.
#define POSTA_MESSAGE_COLUMNS "seq, box, sender, id, subject, content_type, body, sent_at, received_at, read"

StoredMessage read_message(SqlRow const& row)
{
    StoredMessage message;
    message.seq = row.integer(0);
    message.box = parse_box(row.text_view(1)).value_or(Box::Inbox);
    message.from = row.text(2);
    message.id = row.text(3);
    message.subject = row.text(4);
    message.content_type = row.text(5);
    message.body = row.text(6);
    message.sent_at = row.text(7);
    message.received_at_ms = row.optional_integer(8);
    message.read = row.integer(9) != 0;
    return message;
}

}

// -- Inbox -----------------------------------------------------------------

Result<std::vector<InboundOutcome>> Store::accept_inbound(std::span<InboundMessage const> batch, int64_t received_at_ms,
    EventEncoder const& events)
{
    auto transaction = SqliteTransaction::begin(db());
    if (!transaction)
        return transaction.error();

    std::vector<InboundOutcome> outcomes;
    outcomes.reserve(batch.size());
    for (auto const& message : batch) {
        std::optional<int64_t> seq;
        // RETURNING yields no row when the conflict clause skipped the insert.
        auto inserted = m_sql.first(
            "INSERT INTO messages (box, sender, id, subject, content_type, body, sent_at, received_at) "
            "VALUES ('inbox', ?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING RETURNING seq",
            { std::string_view(message.from), std::string_view(message.id), std::string_view(message.subject),
                std::string_view(message.content_type), std::string_view(message.body),
                std::string_view(message.sent_at), received_at_ms },
            [&](SqlRow const& row) { seq = row.integer(0); });
        if (!inserted)
            return inserted.error();
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
        outcome.event = StoredEvent { 0, "message.received", events.message_received(stored), received_at_ms };
        auto event = insert_event(outcome.event.type, outcome.event.data, received_at_ms, *seq);
        if (!event)
            return event.error();
        outcome.event.seq = event.value();
        outcomes.push_back(std::move(outcome));
    }
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return outcomes;
}

// -- Owner API -------------------------------------------------------------

Result<void> Store::load_recipients(StoredMessage& message)
{
    message.to.clear();
    if (message.box != Box::Sent)
        return {};
    auto rows = m_sql.each("SELECT recipient FROM deliveries WHERE message = ?1 ORDER BY position", { message.seq },
        [&](SqlRow const& row) { message.to.push_back(row.text(0)); });
    if (!rows)
        return rows.error();
    return {};
}

Result<MessagePage> Store::list_messages(Box box, int limit, std::optional<int64_t> before, size_t max_bytes)
{
    MessagePage page;
    size_t bytes = 0;
    bool more = false;
    auto add = [&](SqlRow const& row) {
        if (page.messages.size() == static_cast<size_t>(limit)) {
            more = true;
            return false;
        }
        StoredMessage message = read_message(row);
        size_t const size = message.subject.size() + message.body.size();
        if (!page.messages.empty() && (bytes >= max_bytes || size > max_bytes - bytes)) {
            more = true;
            return false;
        }
        bytes += size;
        page.messages.push_back(std::move(message));
        return true;
    };
    // One more than asked tells whether there is a next page.
    auto rows = before
        ? m_sql.each_until("SELECT " POSTA_MESSAGE_COLUMNS " FROM messages "
                     "WHERE box = ?1 AND deleted = 0 AND seq < ?3 ORDER BY seq DESC LIMIT ?2",
              { box_name(box), static_cast<int64_t>(limit) + 1, *before }, add)
        : m_sql.each_until("SELECT " POSTA_MESSAGE_COLUMNS " FROM messages "
                     "WHERE box = ?1 AND deleted = 0 ORDER BY seq DESC LIMIT ?2",
              { box_name(box), static_cast<int64_t>(limit) + 1 }, add);
    if (!rows)
        return rows.error();
    if (more)
        page.next_before = page.messages.back().seq;
    for (auto& message : page.messages) {
        if (auto loaded = load_recipients(message); !loaded)
            return loaded.error();
    }
    return page;
}

Result<std::optional<int64_t>> Store::resolve(MessageKey key)
{
    SqlParam box = key.box ? SqlParam(box_name(*key.box)) : SqlParam(nullptr);
    SqlParam from = key.from ? SqlParam(*key.from) : SqlParam(nullptr);
    std::optional<int64_t> seq;
    auto found = m_sql.first("SELECT seq FROM messages WHERE id = ?1 AND deleted = 0 "
                             "AND (?2 IS NULL OR box = ?2) AND (?3 IS NULL OR sender = ?3) ORDER BY seq LIMIT 1",
        { key.id, box, from }, [&](SqlRow const& row) { seq = row.integer(0); });
    if (!found)
        return found.error();
    return seq;
}

Result<std::optional<StoredMessage>> Store::message_by_seq(int64_t seq)
{
    std::optional<StoredMessage> message;
    auto found = m_sql.first("SELECT " POSTA_MESSAGE_COLUMNS " FROM messages WHERE seq = ?1 AND deleted = 0", { seq },
        [&](SqlRow const& row) { message = read_message(row); });
    if (!found)
        return found.error();
    if (message) {
        if (auto loaded = load_recipients(*message); !loaded)
            return loaded.error();
    }
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
    if (auto updated = m_sql.run("UPDATE messages SET read = ?2 WHERE seq = ?1",
            { *seq.value(), static_cast<int64_t>(read ? 1 : 0) });
        !updated)
        return updated.error();
    return message_by_seq(*seq.value());
}

Result<DeleteOutcome> Store::delete_message(MessageKey key, int64_t now_ms, EventEncoder const& events)
{
    auto transaction = SqliteTransaction::begin(db());
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
    auto rows = m_sql.each("UPDATE deliveries SET state = 'failed', next_attempt_at = NULL, "
                           "last_error = 'the message was deleted before it was delivered', updated_at = ?2 "
                           "WHERE message = ?1 AND state = 'queued' "
                           "RETURNING ?3, recipient, state, attempts, next_attempt_at, last_status, last_error",
        { *seq.value(), now_ms, key.id },
        [&](SqlRow const& row) { cancelled.push_back(delivery_from_row(row)); });
    if (!rows)
        return rows.error();
    for (auto const& delivery : cancelled) {
        auto event = append_delivery_updated(delivery, now_ms, events);
        if (!event)
            return event.error();
        outcome.events.push_back(std::move(event.value()));
    }
    StoredMessage tombstone;
    auto read = m_sql.first("SELECT box, sender, id FROM messages WHERE seq = ?1", { *seq.value() },
        [&](SqlRow const& row) {
            tombstone.seq = *seq.value();
            tombstone.box = parse_box(row.text_view(0)).value_or(Box::Inbox);
            tombstone.from = row.text(1);
            tombstone.id = row.text(2);
        });
    if (!read)
        return read.error();
    if (auto erased = m_sql.run("UPDATE messages SET deleted = 1, subject = '', body = '' WHERE seq = ?1",
            { *seq.value() });
        !erased)
        return erased.error();
    std::string redacted = events.message_deleted(tombstone);
    if (auto redact = m_sql.run("UPDATE events SET data = ?2 WHERE message = ?1", { *seq.value(), redacted });
        !redact)
        return redact.error();
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return outcome;
}

Result<StoredMessage> Store::create_outgoing(OutgoingMessage const& message, int64_t now_ms)
{
    StoredMessage stored;
    stored.box = Box::Sent;
    stored.id = make_message_id();
    stored.from = message.from;
    stored.to = message.to;
    stored.subject = message.subject;
    stored.content_type = message.content_type;
    stored.body = message.body;
    stored.sent_at = format_rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms)));
    stored.read = true;

    auto transaction = SqliteTransaction::begin(db());
    if (!transaction)
        return transaction.error();
    auto inserted = m_sql.first(
        "INSERT INTO messages (box, sender, id, subject, content_type, body, sent_at, received_at, read) "
        "VALUES ('sent', ?1, ?2, ?3, ?4, ?5, ?6, NULL, 1) RETURNING seq",
        { std::string_view(stored.from), std::string_view(stored.id), std::string_view(stored.subject),
            std::string_view(stored.content_type), std::string_view(stored.body), std::string_view(stored.sent_at) },
        [&](SqlRow const& row) { stored.seq = row.integer(0); });
    if (!inserted)
        return inserted.error();
    if (!inserted.value())
        return store_error(path(), "INSERT ... RETURNING gave no row");
    int64_t position = 0;
    for (auto const& recipient : stored.to) {
        if (auto queued = m_sql.run(
                "INSERT INTO deliveries (message, recipient, position, state, next_attempt_at, queued_at, updated_at) "
                "VALUES (?1, ?2, ?3, 'queued', ?4, ?4, ?4)",
                { stored.seq, std::string_view(recipient), position, now_ms });
            !queued)
            return queued.error();
        ++position;
    }
    if (auto committed = transaction->commit(); !committed)
        return committed.error();
    return stored;
}

}
