// The records the Store reads and writes, in the worker of one identity:
// plain values with no JSON and no SQL, so the protocol layer
// (message_json.h) and the store meet here without knowing each other. The
// EventEncoder is how the store asks for the wire text of the events it
// appends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace posta {

enum class Box : uint8_t { Inbox, Sent };
// "inbox", "sent": the spelling of the schema and of the API.
std::string_view box_name(Box);
std::optional<Box> parse_box(std::string_view);

enum class DeliveryState : uint8_t { Queued, Delivered, Failed };
// "queued", "delivered", "failed".
std::string_view delivery_state_name(DeliveryState);
std::optional<DeliveryState> parse_delivery_state(std::string_view);

// A browser session of the identity's owner (worker/sign_in.h): `id` names
// it in the API; of the cookie's secret the store keeps only a hash.
struct SessionRecord {
    std::string id;
    int64_t created_at_ms = 0;
    int64_t expires_at_ms = 0;
    std::optional<int64_t> last_seen_at_ms;
};

struct StoredEvent {
    int64_t seq = 0;
    std::string type; // "message.received", "delivery.updated", ...
    std::string data; // one line of JSON
    int64_t created_at_ms = 0;
};

// One delivery the inbox accepted (checked, signature verified): the
// envelope's fields, URLs canonical, `sent_at` as the sender wrote it.
struct InboundMessage {
    std::string id, from, to, sent_at, subject, content_type, body;
};

struct InboundOutcome {
    bool duplicate = false;
    StoredEvent event; // its message.received; seq 0 when duplicate
};

// A cached identity document of a peer.
struct PeerRecord {
    std::string url, public_key, name, inbox;
    int64_t fetched_at_ms = 0;
    std::optional<int64_t> refetched_at_ms;
};

// A message of either box, as the API shows it.
struct StoredMessage {
    int64_t seq = 0; // local insertion order; the list cursor
    Box box = Box::Inbox;
    std::string id;
    std::string from;
    // Sent: the recipients in the order given. Inbox: empty; the message's
    // "to" is the identity's own URL (message_json fills it in).
    std::vector<std::string> to;
    std::string subject, content_type, body, sent_at;
    std::optional<int64_t> received_at_ms; // inbox only
    bool read = false;
};

struct MessagePage {
    std::vector<StoredMessage> messages; // newest first
    std::optional<int64_t> next_before;  // seq to pass as `before` for the next page; none at the end
};

// Which message an API id means. The API id of a message is its protocol id.
// Ids are unique per (box, sender), not per identity: a message sent to
// oneself is in both boxes under one id, and a sender could reuse another's
// id. `box` and `from` narrow the lookup; among what still matches, the
// first stored live message is meant, so a later arrival never shadows an
// earlier one.
struct MessageKey {
    std::string_view id;
    std::optional<Box> box;
    std::optional<std::string_view> from;
};

// A message the owner sends: one delivery per entry of `to` (canonical
// identity URLs, no duplicates).
struct OutgoingMessage {
    std::string from; // the identity's own URL
    std::vector<std::string> to;
    std::string subject, content_type, body;
};

struct DeliveryRecord {
    std::string message_id;
    std::string to;
    DeliveryState state = DeliveryState::Queued;
    int64_t attempts = 0;
    std::optional<int64_t> next_attempt_at_ms; // set while queued
    std::optional<int64_t> last_status;
    std::optional<std::string> last_error;
};

// A queued delivery at the head of its recipient's queue: which message,
// to whom, and when. No content, so a scan of a long queue stays small; the
// content is read when an attempt starts (OutgoingContent).
struct PendingDelivery {
    int64_t message_seq = 0;
    std::string message_id, to;
    int64_t attempts = 0;
    int64_t next_attempt_at_ms = 0;
    int64_t queued_at_ms = 0;
};

// The outbox's deliveries by state, for the worker's metrics.
struct OutboxCounts {
    int64_t queued = 0;
    int64_t delivered = 0;
    int64_t failed = 0;
    int64_t oldest_queued_at_ms = 0; // queued_at of the oldest queued one; 0: none queued
};

// The signed fields of a sent message that a delivery of it carries.
struct OutgoingContent {
    std::string sent_at, subject, content_type, body;
};

// The outcome of one attempt, as update_delivery() records it.
struct DeliveryUpdate {
    DeliveryState state = DeliveryState::Queued;
    std::optional<int64_t> next_attempt_at_ms; // queued only
    std::optional<int64_t> last_status;
    std::optional<std::string> last_error;
};

// The kept events: `oldest` is the first seq still kept (0: none kept),
// `last` the highest seq ever given (0: none ever), also when pruned.
struct EventRange {
    int64_t oldest = 0;
    int64_t last = 0;
};

// What delete_message() did.
struct DeleteOutcome {
    bool found = false;
    // delivery.updated events for the queued deliveries the delete cancelled
    // (a sent message deleted before it went out), already in the events table.
    std::vector<StoredEvent> events;
};

// What the data of the events the store appends (in the transaction of the
// write they record) holds: the protocol's wire JSON, built by the caller's
// encoder (EventSink, event_sink.h) so the store keeps text it does not
// read. Each function returns one line; none may throw.
class EventEncoder {
public:
    virtual ~EventEncoder() = default;
    // message.received: the <message> object of a message just accepted.
    virtual std::string message_received(StoredMessage const&) const = 0;
    // delivery.updated: the <delivery> object after an attempt or a cancel.
    virtual std::string delivery_updated(DeliveryRecord const&) const = 0;
    // What stays of a message.received event once the owner deleted its
    // message: the message's id, box and sender, and that it was deleted.
    virtual std::string message_deleted(StoredMessage const&) const = 0;
};

}
