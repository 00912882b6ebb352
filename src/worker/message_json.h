// The owner API's wire objects (PROTOCOL.md, "Owner API"): the <message> and
// <delivery> JSON objects, as the API answers them and as the event stream
// publishes them, and the opaque list cursor. Pure functions over the
// Store's records (store_records.h); used by the EventSink (the events' data)
// and ApiServer.
#pragma once

#include "worker/store_records.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace posta {

// Milliseconds since the Unix epoch as RFC 3339 UTC, whole seconds.
std::string format_time_ms(int64_t ms);

// {"id","box","from","to":[...],"subject","content_type","body","sent_at",
// "received_at","read"}, in that order. `own_url` is the identity's URL:
// the "to" of an inbound message, which the store does not keep per row.
nlohmann::ordered_json message_object(StoredMessage const&, std::string_view own_url);
// The same, serialized on one line (invalid UTF-8 replaced, never thrown).
std::string message_json(StoredMessage const&, std::string_view own_url);

// {"id","box","from","deleted":true}: what a message.received event keeps
// once its message was deleted.
std::string deleted_message_json(StoredMessage const&);

// {"message_id","to","state","attempts","next_attempt_at","last_status","last_error"}.
nlohmann::ordered_json delivery_object(DeliveryRecord const&);
std::string delivery_json(DeliveryRecord const&);

// The `before` cursor of GET /api/messages: opaque to clients (base64url of
// the message's local seq, 8 bytes big-endian). decode_cursor() refuses
// anything encode_cursor() would not write.
std::string encode_cursor(int64_t seq);
std::optional<int64_t> decode_cursor(std::string_view cursor);

}
