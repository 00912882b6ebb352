#include "store_records.h"

namespace posta {

std::string_view box_name(Box box)
{
    return box == Box::Sent ? "sent" : "inbox";
}

std::optional<Box> parse_box(std::string_view name)
{
    if (name == "inbox")
        return Box::Inbox;
    if (name == "sent")
        return Box::Sent;
    return std::nullopt;
}

std::string_view delivery_state_name(DeliveryState state)
{
    switch (state) {
    case DeliveryState::Queued:
        return "queued";
    case DeliveryState::Delivered:
        return "delivered";
    case DeliveryState::Failed:
        return "failed";
    }
    return "failed";
}

std::optional<DeliveryState> parse_delivery_state(std::string_view name)
{
    if (name == "queued")
        return DeliveryState::Queued;
    if (name == "delivered")
        return DeliveryState::Delivered;
    if (name == "failed")
        return DeliveryState::Failed;
    return std::nullopt;
}

}
