#include "responder.h"

#include "common/log.h"

#include <utility>

namespace posta {

ResponseSlot::~ResponseSlot()
{
    if (!m_sink)
        return;
    log::error("a handler dropped its request without answering; sending 500");
    respond(Response::error(500, "internal_error", "the server failed to answer this request"));
}

void ResponseSlot::respond(Response response)
{
    if (ResponseSink* sink = std::exchange(m_sink, nullptr))
        sink->send_response(std::move(response));
}

}
