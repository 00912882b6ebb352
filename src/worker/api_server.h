// ApiServer: the owner API of one identity (PROTOCOL.md, "Owner API"), the
// /api/ routes of its worker's Router: messages of both boxes, sending, the
// outbox's deliveries, and the owner's browser sessions (sign_in.h). Every
// route but the sign-in checks the caller (authorize()): a Bearer token or a
// session cookie, whose hashes are in the identity's Store. It answers at
// once: every query is a short, local SQLite call on the worker's loop. It
// owns nothing but its settings; the Store, the EventSink and the Router
// belong to the worker and outlive it.
#pragma once

#include "http/http_message.h"
#include "http/responder.h"
#include "worker/event_sink.h"
#include "worker/store.h"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace posta {

class Router;

class ApiServer {
public:
    struct Settings {
        std::string own_url;                  // the identity's canonical URL
        size_t max_body_bytes = 1048576;      // the receivers' limit a message must fit in
        size_t max_page_bytes = 4194304;      // the messages' JSON in one page of GET /api/messages
        // Called after POST /api/messages committed a message with its queued
        // deliveries: the outbox loop's cue to look at its queue.
        std::function<void()> on_queued;
    };

    // The events the API appends (a delete that cancels queued deliveries)
    // are published to `events` after their commit. Store and sink must
    // outlive the ApiServer.
    ApiServer(Store& store, EventSink& events, Settings settings);
    ApiServer(ApiServer const&) = delete;
    ApiServer& operator=(ApiServer const&) = delete;

    // Registers GET/POST /api/messages, GET/PATCH/DELETE /api/messages/<id>,
    // GET /api/deliveries, POST/DELETE /api/session, GET /api/sessions and
    // DELETE /api/sessions/<id>. The handlers refer to this ApiServer, which
    // must outlive `router`'s use.
    void add_routes(Router& router);

    // The one check of the owner API's callers, for every /api/ route but
    // the sign-in (the event stream's too): nullopt to let the request in;
    // else the answer, 401 (with WWW-Authenticate: Bearer) or 403.
    std::optional<Response> authorize(Request const& request);

private:
    // Who a request that passed authorize() comes from.
    struct Caller {
        std::optional<std::string> session_id; // signed in with this session's cookie; none: a token
    };
    // authorize(), telling who the caller is: `Authorization: Bearer` when
    // the request has an Authorization field; else the posta_session
    // cookie, and then a request that changes state must carry the
    // identity's Origin (sign_in.h).
    Result<Caller, Response> identify(Request const& request);

    Response list_messages(Request const&, Caller const&);
    Response send_message(Request const&, Caller const&);
    Response message(Request const&, Caller const&);
    Response list_deliveries(Request const&, Caller const&);
    Response create_session(Request const&);
    Response list_sessions(Request const&, Caller const&);
    Response end_session(Request const&, Caller const&);
    Response revoke_session(Request const&, Caller const&);

    // The answer to a failed store call: 503 when the database stayed busy,
    // 500 otherwise; the error is logged.
    Response store_failure(Error const& error, char const* doing);

    Store& m_store;
    EventSink& m_events;
    Settings m_settings;
};

}
