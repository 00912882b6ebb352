// EventSink: the one place the worker's events take their wire form and go
// out, in the worker of one identity. Inbox, ApiServer and OutboxLoop hand
// it to the Store, which asks it for the data of each event it appends (the
// <message> and <delivery> JSON of message_json.h), and give it each event
// after its commit, which it passes to the event stream. It owns its URL
// and the publish function; what that function reaches is the worker's.
#pragma once

#include "worker/store_records.h"

#include <functional>
#include <string>

namespace posta {

class EventSink final : public EventEncoder {
public:
    // Called for each committed event, in commit order; must not throw.
    using Publish = std::function<void(StoredEvent const&)>;

    // `own_url`: the identity's canonical URL, the "to" of its inbound messages.
    EventSink(std::string own_url, Publish publish)
        : m_own_url(std::move(own_url))
        , m_publish(std::move(publish))
    {
    }

    std::string message_received(StoredMessage const&) const override;
    std::string delivery_updated(DeliveryRecord const&) const override;
    std::string message_deleted(StoredMessage const&) const override;

    // An event that is on disk: to the live subscribers.
    void publish(StoredEvent const& event) const
    {
        if (m_publish)
            m_publish(event);
    }

private:
    std::string m_own_url;
    Publish m_publish;
};

}
