#include "event_sink.h"

#include "worker/message_json.h"

namespace posta {

std::string EventSink::message_received(StoredMessage const& message) const
{
    return message_json(message, m_own_url);
}

std::string EventSink::delivery_updated(DeliveryRecord const& delivery) const { return delivery_json(delivery); }

std::string EventSink::message_deleted(StoredMessage const& message) const { return deleted_message_json(message); }

}
