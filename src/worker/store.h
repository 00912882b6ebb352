// Store: the identity's SQLite database, <state_dir>/<slug>/inbox.db, opened
// by that identity's worker alone (and by `posta-server token`). It owns the
// connection and its prepared statements (StatementCache), applies the
// schema migrations on open (store_schema.h), and holds the queries of the
// inbox, the outbox loop, the API and the event stream, one file per table
// group (store_*.cpp). It returns records (store_records.h), never JSON; the
// data of the events it appends comes from the caller's EventEncoder. It has
// no clock: callers pass the times (milliseconds since the Unix epoch) that
// rows are stamped with. It blocks on disk (fsync at every commit); the
// worker calls it from its loop.
#pragma once

#include "common/result.h"
#include "protocol/api_token.h"
#include "worker/statement_cache.h"
#include "worker/store_records.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

    // For the migration tests: creates (or migrates) `dir`/inbox.db at
    // schema `version` (0: an empty database), as an older release would
    // have left it, and closes it.
    static Result<void> create_at_version(std::string const& dir, int version);

    // Events are kept while they are among the last this many, or younger
    // than event_keep_ms (PROTOCOL.md, "Event stream").
    static constexpr int64_t event_keep_count = 10000;
    static constexpr int64_t event_keep_ms = 7LL * 24 * 3600 * 1000;

    Store(Store&&) noexcept;
    Store& operator=(Store&&) noexcept;
    ~Store();

    // PRAGMA user_version: the schema version the file is at.
    Result<int> user_version();

    // Moves everything from the WAL into the database file and truncates the
    // WAL, so a stopped identity is one self-contained file to back up or
    // move. Called at graceful stop.
    Result<void> checkpoint();

    // -- Inbox -------------------------------------------------------------

    // Group commit: one transaction (BEGIN IMMEDIATE ... COMMIT, fsynced)
    // for the whole batch. Each message goes into box 'inbox' unless
    // (from, id) is there already, also as a tombstone, or earlier in the
    // batch: then its outcome is a duplicate and nothing changes for it. For
    // each inserted one a message.received event (data: the <message>
    // object, one line) is appended in the same transaction. On any error the
    // whole batch is rolled back and the error returned; the caller must not
    // answer 202/200 for any of it. On success the outcomes are in batch
    // order and everything is on disk.
    Result<std::vector<InboundOutcome>> accept_inbound(std::span<InboundMessage const> batch, int64_t received_at_ms,
        EventEncoder const& events);

    // -- Peer cache --------------------------------------------------------

    Result<std::optional<PeerRecord>> find_peer(std::string_view url);
    // Inserts or replaces the entry of `peer.url`; a refetched_at_ms that is
    // not given keeps the stored one.
    Result<void> save_peer(PeerRecord const& peer);
    // Notes a refetch forced by a bad signature; nothing when `url` is not cached.
    Result<void> mark_peer_refetched(std::string_view url, int64_t at_ms);

    // -- Owner API ---------------------------------------------------------

    // Live (not deleted) messages of `box` with seq below `before` (none:
    // from the newest), newest first, at most `limit` (1..500) and no more
    // than `max_bytes` of content (subject and body; the first message
    // always): rows are read one at a time and the page stops at the bound.
    Result<MessagePage> list_messages(Box box, int limit, std::optional<int64_t> before,
        size_t max_bytes = SIZE_MAX);
    // The live message `key` means (see MessageKey), if any.
    Result<std::optional<StoredMessage>> find_message(MessageKey key);
    // Sets the read flag; returns the updated message, nullopt when none matched.
    Result<std::optional<StoredMessage>> set_read(MessageKey key, bool read);
    // Leaves a tombstone: subject and body cleared, deleted = 1, so the id
    // answers 404 from now on while a redelivery stays a duplicate. The
    // message's message.received event keeps its seq and type, its data
    // becomes events.message_deleted(): the content is gone from the log. For a sent
    // message, deliveries still queued are cancelled (failed, with
    // last_error saying so): their content is gone; each gets a
    // delivery.updated event (data: events.delivery_updated()).
    Result<DeleteOutcome> delete_message(MessageKey key, int64_t now_ms, EventEncoder const& events);
    // Stores a message in box 'sent' with a fresh id (make_message_id(), so
    // sodium_init() first), sent_at = now, and one queued delivery per
    // recipient, due now, in one transaction.
    Result<StoredMessage> create_outgoing(OutgoingMessage const& message, int64_t now_ms);
    // Every delivery in `state` (none: all), in queue order (message, then
    // position in its "to" list).
    Result<std::vector<DeliveryRecord>> list_deliveries(std::optional<DeliveryState> state);

    // -- Outbox ------------------------------------------------------------

    // For each recipient with queued deliveries, the oldest queued one (its
    // message was queued first): the only one of that recipient the outbox
    // may send, so a recipient's messages arrive in queue order. Soonest due
    // first. Ids and times only: no message content.
    Result<std::vector<PendingDelivery>> queue_heads();
    // How many deliveries are in each state, and when the oldest queued
    // one was queued. Reads the deliveries_due index, not the table.
    Result<OutboxCounts> outbox_counts();
    // The content of the sent message `message_seq`, for an attempt that
    // starts; nullopt when there is no such live sent message.
    Result<std::optional<OutgoingContent>> outgoing_content(int64_t message_seq);
    // Records one attempt of the delivery (message_seq, to): attempts + 1,
    // the new state and fields, and a delivery.updated event (data:
    // events.delivery_updated()) in the same transaction. Returns the event; nullopt, with
    // nothing changed, when the delivery is no longer queued (a delete
    // cancelled it while the attempt ran).
    Result<std::optional<StoredEvent>> update_delivery(int64_t message_seq, std::string_view to, DeliveryUpdate const& update,
        int64_t now_ms, EventEncoder const& events);

    // -- API tokens --------------------------------------------------------

    Result<void> add_token(TokenHash const& hash, int64_t now_ms);
    // Whether a token with this hash was issued. Notes its use (at most one
    // write an hour per token, to spare the disk).
    Result<bool> verify_token(TokenHash const& hash, int64_t now_ms);

    // -- Sign-in codes and sessions (store_sessions.cpp) --------------------
    //
    // A code or session is live while now < its expires_at; the ones that
    // expired are removed when a new one is added.

    Result<void> add_login_code(TokenHash const& hash, int64_t now_ms, int64_t expires_at_ms);
    // Redeems a sign-in code: in one transaction, deletes it and, if it was
    // live at now_ms, adds `session` (its secret's hash: `session_hash`).
    // False, with no session added, when there was no such code or it had
    // expired. The delete decides, so a code works once however many
    // requests race with it.
    Result<bool> redeem_login_code(TokenHash const& code, TokenHash const& session_hash, SessionRecord const& session,
        int64_t now_ms);
    // Adds a session (a sign-in with an API token).
    Result<void> add_session(TokenHash const& hash, SessionRecord const& session, int64_t now_ms);
    // The live session whose secret has this hash, if any. Notes its use
    // (last_seen_at, at most one write an hour per session).
    Result<std::optional<SessionRecord>> find_session(TokenHash const& hash, int64_t now_ms);
    // The live sessions, oldest first.
    Result<std::vector<SessionRecord>> list_sessions(int64_t now_ms);
    // Ends the live session `id`; false when there is none.
    Result<bool> delete_session(std::string_view id, int64_t now_ms);

    // -- Event log ---------------------------------------------------------

    // Appends one event in its own transaction; returns its seq.
    Result<int64_t> append_event(std::string_view type, std::string_view data, int64_t now_ms);
    // Kept events with seq > `after`, oldest first, at most `limit`.
    Result<std::vector<StoredEvent>> events_after(int64_t after, int limit);
    Result<EventRange> event_range();
    // Deletes events that are neither among the last event_keep_count nor
    // younger than event_keep_ms; returns how many.
    Result<int64_t> prune_events(int64_t now_ms);

    SqliteDb& db() { return m_sql.db(); }
    std::string const& path() const { return m_sql.db().path(); }

private:
    explicit Store(SqliteDb db);
    static Result<Store> open_at(std::string const& dir, int version);
    // `message`: the seq of the message a message.received event is about.
    Result<int64_t> insert_event(std::string_view type, std::string_view data, int64_t now_ms,
        std::optional<int64_t> message = std::nullopt);
    Result<std::optional<int64_t>> resolve(MessageKey key);
    Result<std::optional<StoredMessage>> message_by_seq(int64_t seq);
    Result<void> load_recipients(StoredMessage& message);
    // Appends the delivery.updated event of `delivery`, inside the caller's
    // transaction, and returns it as stored.
    Result<StoredEvent> append_delivery_updated(DeliveryRecord const& delivery, int64_t now_ms,
        EventEncoder const& events);
    // A delivery from a row whose columns are, in this order, its message's
    // id, then the deliveries table's recipient, state, attempts,
    // next_attempt_at, last_status and last_error.
    static DeliveryRecord delivery_from_row(SqlRow const& row);

    // Use of a token or session is noted at most this often.
    static constexpr int64_t use_note_interval_ms = 3600 * 1000;

    StatementCache m_sql;
};

}
