#include "message_json.h"

#include "protocol/base64url.h"
#include "protocol/timestamp.h"

#include <array>
#include <chrono>

namespace posta {

namespace {

std::string dump(nlohmann::ordered_json const& value)
{
    return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}

std::string format_time_ms(int64_t ms)
{
    return format_rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

nlohmann::ordered_json message_object(StoredMessage const& message, std::string_view own_url)
{
    auto to = nlohmann::ordered_json::array();
    if (message.box == Box::Inbox) {
        to.push_back(std::string(own_url));
    } else {
        for (auto const& recipient : message.to)
            to.push_back(recipient);
    }
    nlohmann::ordered_json received_at = nullptr;
    if (message.received_at_ms)
        received_at = format_time_ms(*message.received_at_ms);
    return nlohmann::ordered_json {
        { "id", message.id },
        { "box", std::string(box_name(message.box)) },
        { "from", message.from },
        { "to", std::move(to) },
        { "subject", message.subject },
        { "content_type", message.content_type },
        { "body", message.body },
        { "sent_at", message.sent_at },
        { "received_at", std::move(received_at) },
        { "read", message.read },
    };
}

std::string message_json(StoredMessage const& message, std::string_view own_url)
{
    return dump(message_object(message, own_url));
}

std::string deleted_message_json(StoredMessage const& message)
{
    return dump(nlohmann::ordered_json {
        { "id", message.id },
        { "box", std::string(box_name(message.box)) },
        { "from", message.from },
        { "deleted", true },
    });
}

nlohmann::ordered_json delivery_object(DeliveryRecord const& delivery)
{
    nlohmann::ordered_json next_attempt_at = nullptr;
    if (delivery.next_attempt_at_ms)
        next_attempt_at = format_time_ms(*delivery.next_attempt_at_ms);
    nlohmann::ordered_json last_status = nullptr;
    if (delivery.last_status)
        last_status = *delivery.last_status;
    nlohmann::ordered_json last_error = nullptr;
    if (delivery.last_error)
        last_error = *delivery.last_error;
    return nlohmann::ordered_json {
        { "message_id", delivery.message_id },
        { "to", delivery.to },
        { "state", std::string(delivery_state_name(delivery.state)) },
        { "attempts", delivery.attempts },
        { "next_attempt_at", std::move(next_attempt_at) },
        { "last_status", std::move(last_status) },
        { "last_error", std::move(last_error) },
    };
}

std::string delivery_json(DeliveryRecord const& delivery)
{
    return dump(delivery_object(delivery));
}

std::string encode_cursor(int64_t seq)
{
    std::array<unsigned char, 8> bytes {};
    auto value = static_cast<uint64_t>(seq);
    for (size_t i = bytes.size(); i-- > 0;) {
        bytes[i] = static_cast<unsigned char>(value & 0xff);
        value >>= 8;
    }
    return base64url_encode(bytes);
}

std::optional<int64_t> decode_cursor(std::string_view cursor)
{
    std::array<unsigned char, 8> bytes {};
    if (!base64url_decode_exact(cursor, bytes))
        return std::nullopt;
    uint64_t value = 0;
    for (unsigned char byte : bytes)
        value = (value << 8) | byte;
    // A seq is a positive rowid.
    if (value == 0 || value > static_cast<uint64_t>(INT64_MAX))
        return std::nullopt;
    return static_cast<int64_t>(value);
}

}
