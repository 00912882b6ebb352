// Validation happens here, before the store is touched; the store trusts
// what it is given (canonical URLs, a valid media type). Every answer,
// errors included, is JSON in the format of PROTOCOL.md, except 204.
//
// Request bodies must be JSON objects with Content-Type: application/json
// (else 415), each field at most once and no field this version does not
// know (400): a typo such as "subjet" is refused rather than silently
// sending a message without a subject.
#include "api_server.h"

#include "common/duration.h"
#include "protocol/api_token.h"
#include "worker/api_input.h"
#include "common/host_key.h"
#include "common/log.h"
#include "protocol/envelope.h"
#include "worker/message_json.h"
#include "worker/sign_in.h"
#include "worker/sqlite.h"
#include "http/router.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

namespace posta {

namespace {

using nlohmann::json;

constexpr std::string_view messages_prefix = "/api/messages/";
constexpr std::string_view sessions_prefix = "/api/sessions/";
constexpr int default_limit = 50;
constexpr int max_limit = 500;

// 401 with the challenge of RFC 6750 section 3, which a 401 must carry.
Response unauthorized(std::string_view code, std::string_view message, char const* challenge = "Bearer realm=\"posta\"")
{
    Response response = Response::error(401, code, message);
    response.headers.set("WWW-Authenticate", challenge);
    return response;
}

// How many posta_session cookies of one request are looked up: a browser
// sends more than one only when another path or a sibling domain set one.
constexpr size_t max_session_cookies = 4;

nlohmann::ordered_json session_object(SessionRecord const& session)
{
    return {
        { "id", session.id },
        { "created_at", format_time_ms(session.created_at_ms) },
        { "expires_at", format_time_ms(session.expires_at_ms) },
        { "last_seen_at", session.last_seen_at_ms ? nlohmann::ordered_json(format_time_ms(*session.last_seen_at_ms)) : nullptr },
    };
}

// 200 with `value` on one line, its fields in the order they were built.
Response ordered_json_response(nlohmann::ordered_json const& value)
{
    Response response;
    response.headers.set("Content-Type", "application/json");
    response.body = value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    return response;
}

Response not_found(std::string_view id)
{
    return Response::error(404, "not_found", "no message with id \"" + std::string(id) + "\"");
}

}

ApiServer::ApiServer(Store& store, EventSink& events, Settings settings)
    : m_store(store)
    , m_events(events)
    , m_settings(std::move(settings))
{
}

void ApiServer::add_routes(Router& router)
{
    // Each handler checks the caller first; nothing else is read before.
    auto guarded = [this](Response (ApiServer::*handle)(Request const&, Caller const&)) {
        return [this, handle](Request request, Responder responder) {
            auto caller = identify(request);
            if (!caller) {
                responder.respond(std::move(caller).error());
                return;
            }
            responder.respond((this->*handle)(request, caller.value()));
        };
    };
    router.add("GET", "/api/messages", guarded(&ApiServer::list_messages));
    router.add("POST", "/api/messages", guarded(&ApiServer::send_message));
    for (char const* method : { "GET", "PATCH", "DELETE" })
        router.add_prefix(method, std::string(messages_prefix), guarded(&ApiServer::message));
    router.add("GET", "/api/deliveries", guarded(&ApiServer::list_deliveries));
    // The sign-in checks what it is given itself: a code or a token.
    router.add("POST", "/api/session",
        [this](Request request, Responder responder) { responder.respond(create_session(request)); });
    router.add("DELETE", "/api/session", guarded(&ApiServer::end_session));
    router.add("GET", "/api/sessions", guarded(&ApiServer::list_sessions));
    router.add_prefix("DELETE", std::string(sessions_prefix), guarded(&ApiServer::revoke_session));
}

std::optional<Response> ApiServer::authorize(Request const& request)
{
    auto caller = identify(request);
    if (!caller)
        return std::move(caller).error();
    return std::nullopt;
}

Result<ApiServer::Caller, Response> ApiServer::identify(Request const& request)
{
    constexpr std::string_view how = "this needs Authorization: Bearer <token> (`posta-server token <slug>`) "
                                     "or a session cookie (sign in: `posta-server login <slug>`)";
    if (request.headers.count("Authorization") > 0) {
        auto header = request.headers.get("Authorization");
        std::string_view value = *header;
        constexpr std::string_view scheme = "Bearer ";
        if (request.headers.count("Authorization") != 1 || value.size() <= scheme.size()
            || !iequals(value.substr(0, scheme.size()), scheme))
            return unauthorized("unauthorized", how);
        std::string_view token = value.substr(scheme.size());
        while (!token.empty() && token.front() == ' ')
            token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
            token.remove_suffix(1);
        auto valid = m_store.verify_token(hash_api_token(token), wall_clock_ms());
        if (!valid)
            return store_failure(valid.error(), "checking an API token");
        if (!valid.value())
            return unauthorized("unauthorized", "the token is not valid for this identity",
                "Bearer realm=\"posta\", error=\"invalid_token\"");
        return Caller {};
    }

    auto secrets = cookie_values(request.headers, session_cookie_name);
    if (secrets.empty())
        return unauthorized("unauthorized", how);
    // Before the store is asked: another site's request learns nothing.
    if (changes_state(request.method)) {
        if (auto refused = check_origin(request, m_settings.own_url, OriginRule::Required))
            return std::move(*refused);
    }
    int64_t now = wall_clock_ms();
    for (size_t i = 0; i < secrets.size() && i < max_session_cookies; ++i) {
        auto session = m_store.find_session(hash_secret(secrets[i]), now);
        if (!session)
            return store_failure(session.error(), "checking a session");
        if (session.value())
            return Caller { std::move(session.value()->id) };
    }
    // The browser may drop the dead cookie now.
    Response refused = unauthorized("unauthorized",
        "the session has ended or expired; sign in again (`posta-server login <slug>` prints a link)");
    refused.headers.set("Set-Cookie", ended_session_cookie(cookie_transport(request)));
    return refused;
}

Response ApiServer::store_failure(Error const& error, char const* doing)
{
    log::error("%s: %s", doing, error.text().c_str());
    if (is_sqlite_busy(error)) {
        Response response = Response::error(503, "busy", "the identity's database is busy; try again");
        response.headers.set("Retry-After", "1");
        return response;
    }
    return Response::error(500, "internal_error", "the identity's database failed; the server log says why");
}

Response ApiServer::list_messages(Request const& request, Caller const&)
{
    auto query = parse_query(request.query);
    if (!query)
        return std::move(query).error();
    Query const& params = query.value();

    auto box = box_parameter(params);
    if (!box)
        return std::move(box).error();
    int limit = default_limit;
    if (auto text = parameter(params, "limit")) {
        int value = 0;
        bool digits = !text->empty() && text->size() <= 3
            && std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '9'; });
        for (char c : *text)
            value = digits ? value * 10 + (c - '0') : 0;
        if (!digits || value < 1 || value > max_limit)
            return bad_request("invalid_parameter", "limit must be a whole number from 1 to " + std::to_string(max_limit));
        limit = value;
    }
    std::optional<int64_t> before;
    if (auto text = parameter(params, "before")) {
        before = decode_cursor(*text);
        if (!before)
            return bad_request("invalid_parameter", "before must be a cursor from the \"next\" of an earlier page");
    }

    // The store stops at the budget counting content bytes; the JSON of a
    // message is at least that long, so the page is cut again here by what
    // goes on the wire. Each message is serialized once, into the body.
    size_t const budget = m_settings.max_page_bytes;
    auto page = m_store.list_messages(box.value().value_or(Box::Inbox), limit, before, budget);
    if (!page)
        return store_failure(page.error(), "listing messages");
    Response response;
    response.headers.set("Content-Type", "application/json");
    response.body = "{\"messages\":[";
    size_t bytes = 0;
    size_t kept = 0;
    int64_t last_seq = 0;
    for (; kept < page->messages.size(); ++kept) {
        std::string json = message_json(page->messages[kept], m_settings.own_url);
        if (kept > 0 && json.size() > budget - std::min(budget, bytes))
            break;
        bytes += json.size();
        if (kept > 0)
            response.body += ',';
        response.body += json;
        last_seq = page->messages[kept].seq;
        page->messages[kept] = {}; // its bytes are in the body now
    }
    std::optional<int64_t> next = page->next_before;
    if (kept < page->messages.size())
        next = last_seq;
    response.body += "],\"next\":";
    response.body += next ? "\"" + encode_cursor(*next) + "\"" : std::string("null");
    response.body += '}';
    return response;
}

Response ApiServer::send_message(Request const& request, Caller const&)
{
    static constexpr std::array<std::string_view, 4> fields = { "to", "subject", "body", "content_type" };
    auto parsed = json_object_body(request, fields);
    if (!parsed)
        return std::move(parsed).error();
    json& doc = parsed.value();

    OutgoingMessage message;
    message.from = m_settings.own_url;
    auto recipients = recipients_field(doc);
    if (!recipients)
        return std::move(recipients).error();
    message.to = std::move(recipients).value();
    auto subject = string_field(doc, "subject", std::string());
    if (!subject)
        return std::move(subject).error();
    message.subject = std::move(subject).value();
    auto body = string_field(doc, "body", std::nullopt);
    if (!body)
        return std::move(body).error();
    message.body = std::move(body).value();
    auto content_type = string_field(doc, "content_type", std::string("text/plain"));
    if (!content_type)
        return std::move(content_type).error();
    message.content_type = std::move(content_type).value();
    if (!is_valid_content_type(message.content_type))
        return bad_request("invalid_content_type",
            "\"content_type\" must be a media type such as \"text/plain\" or \"text/markdown; charset=utf-8\"");

    // What a receiver will be sent must fit in its body limit (ours, as a
    // stand-in for theirs): refuse now rather than fail at every recipient.
    Envelope probe;
    probe.id = std::string(22, 'A');
    probe.from = message.from;
    for (auto const& recipient : message.to) {
        if (recipient.size() > probe.to.size())
            probe.to = recipient;
    }
    probe.sent_at = "2026-11-27T09:00:00Z";
    probe.subject = message.subject;
    probe.content_type = message.content_type;
    probe.body = message.body;
    if (size_t size = make_envelope_json(probe).size(); size > m_settings.max_body_bytes)
        return Response::error(413, "body_too_large",
            "the delivery of this message would be " + std::to_string(size) + " bytes; recipients accept at most "
                + std::to_string(m_settings.max_body_bytes));

    auto stored = m_store.create_outgoing(message, wall_clock_ms());
    if (!stored)
        return store_failure(stored.error(), "queueing a message");
    if (m_settings.on_queued)
        m_settings.on_queued();

    auto deliveries = nlohmann::ordered_json::array();
    for (auto const& recipient : stored->to)
        deliveries.push_back(nlohmann::ordered_json { { "to", recipient }, { "status", "queued" } });
    Response response = ordered_json_response({ { "id", stored->id }, { "deliveries", std::move(deliveries) } });
    response.status = 202;
    response.headers.set("Location", std::string(messages_prefix) + stored->id + "?box=sent");
    return response;
}

Response ApiServer::message(Request const& request, Caller const&)
{
    std::string_view id = std::string_view(request.path).substr(messages_prefix.size());
    if (id.empty() || id.find('/') != std::string_view::npos)
        return Response::error(404, "not_found", "no such resource: " + request.path);

    auto query = parse_query(request.query);
    if (!query)
        return std::move(query).error();
    Query const& params = query.value();
    MessageKey key;
    key.id = id;
    auto box = box_parameter(params);
    if (!box)
        return std::move(box).error();
    key.box = box.value();
    std::string from;
    if (auto text = parameter(params, "from")) {
        auto url = parse_identity_url(*text);
        if (!url)
            return bad_request("invalid_parameter", "from is not an identity URL: " + url.error().detail);
        from = std::move(url->canonical);
        key.from = from;
    }

    auto answer = [this](StoredMessage const& message) {
        return ordered_json_response(message_object(message, m_settings.own_url));
    };

    if (request.method == "DELETE") {
        auto deleted = m_store.delete_message(key, wall_clock_ms(), m_events);
        if (!deleted)
            return store_failure(deleted.error(), "deleting a message");
        if (!deleted->found)
            return not_found(id);
        for (auto const& event : deleted->events)
            m_events.publish(event);
        return Response { 204, {}, {} };
    }

    if (request.method == "PATCH") {
        static constexpr std::array<std::string_view, 1> fields = { "read" };
        auto parsed = json_object_body(request, fields);
        if (!parsed)
            return std::move(parsed).error();
        json const& doc = parsed.value();
        auto it = doc.find("read");
        if (it == doc.end())
            return bad_request("missing_field", "the field \"read\" is required: {\"read\": true} or {\"read\": false}");
        if (!it->is_boolean())
            return bad_request("wrong_type", "\"read\" is " + describe_json_type(*it) + "; it must be true or false");
        auto updated = m_store.set_read(key, it->get<bool>());
        if (!updated)
            return store_failure(updated.error(), "marking a message read");
        if (!updated.value())
            return not_found(id);
        return answer(*updated.value());
    }

    auto found = m_store.find_message(key);
    if (!found)
        return store_failure(found.error(), "reading a message");
    if (!found.value())
        return not_found(id);
    return answer(*found.value());
}

Response ApiServer::list_deliveries(Request const& request, Caller const&)
{
    auto query = parse_query(request.query);
    if (!query)
        return std::move(query).error();
    std::optional<DeliveryState> state;
    if (auto text = parameter(query.value(), "state")) {
        state = parse_delivery_state(*text);
        if (!state)
            return bad_request("invalid_parameter", "state must be \"queued\", \"delivered\" or \"failed\"");
    }
    auto deliveries = m_store.list_deliveries(state);
    if (!deliveries)
        return store_failure(deliveries.error(), "listing deliveries");
    auto list = nlohmann::ordered_json::array();
    for (auto const& delivery : deliveries.value())
        list.push_back(delivery_object(delivery));
    return ordered_json_response({ { "deliveries", std::move(list) } });
}

// -- Sessions ----------------------------------------------------------------

Response ApiServer::create_session(Request const& request)
{
    // A sign-in from another site's page would sign the owner's browser into
    // a session of that site's choosing (login CSRF). Tools send no Origin.
    if (auto refused = check_origin(request, m_settings.own_url, OriginRule::IfPresent))
        return std::move(*refused);
    static constexpr std::array<std::string_view, 2> fields = { "code", "token" };
    auto parsed = json_object_body(request, fields);
    if (!parsed)
        return std::move(parsed).error();
    json& doc = parsed.value();
    bool has_code = doc.contains("code");
    if (has_code == doc.contains("token"))
        return bad_request(has_code ? "conflicting_fields" : "missing_field",
            "give either \"code\" (from a sign-in link) or \"token\" (an API token), not both");
    auto secret = string_field(doc, has_code ? "code" : "token", std::nullopt);
    if (!secret)
        return std::move(secret).error();

    int64_t now = wall_clock_ms();
    NewSession session = make_session(now);
    if (has_code) {
        auto redeemed = m_store.redeem_login_code(hash_secret(secret.value()), session.hash, session.record, now);
        if (!redeemed)
            return store_failure(redeemed.error(), "redeeming a sign-in code");
        if (!redeemed.value())
            return unauthorized("invalid_code",
                "this sign-in code is not valid: it was used already, it expired (codes last 10 minutes), or it "
                "is another identity's; print a new link with `posta-server login <slug>`");
    } else {
        auto valid = m_store.verify_token(hash_api_token(secret.value()), now);
        if (!valid)
            return store_failure(valid.error(), "checking an API token");
        if (!valid.value())
            return unauthorized("invalid_token", "the token is not valid for this identity");
        if (auto added = m_store.add_session(session.hash, session.record, now); !added)
            return store_failure(added.error(), "starting a session");
    }
    log::info("session %s started by %s from %s", session.record.id.c_str(), has_code ? "a sign-in code" : "an API token",
        request.client_address.c_str());
    Response response = ordered_json_response({ { "session", session_object(session.record) } });
    response.status = 201;
    response.headers.set("Set-Cookie", session_cookie(session, cookie_transport(request)));
    response.headers.set("Cache-Control", "no-store");
    return response;
}

Response ApiServer::list_sessions(Request const&, Caller const& caller)
{
    auto sessions = m_store.list_sessions(wall_clock_ms());
    if (!sessions)
        return store_failure(sessions.error(), "listing sessions");
    auto list = nlohmann::ordered_json::array();
    for (auto const& session : sessions.value()) {
        auto object = session_object(session);
        object["current"] = caller.session_id == session.id;
        list.push_back(std::move(object));
    }
    return ordered_json_response({ { "sessions", std::move(list) } });
}

Response ApiServer::end_session(Request const& request, Caller const& caller)
{
    if (!caller.session_id)
        return Response::error(404, "not_found",
            "this request has no session: it used a token; end a session with DELETE /api/sessions/<id>");
    auto deleted = m_store.delete_session(*caller.session_id, wall_clock_ms());
    if (!deleted)
        return store_failure(deleted.error(), "ending a session");
    log::info("session %s ended by its owner", caller.session_id->c_str());
    Response response { 204, {}, {} };
    response.headers.set("Set-Cookie", ended_session_cookie(cookie_transport(request)));
    return response;
}

Response ApiServer::revoke_session(Request const& request, Caller const& caller)
{
    std::string_view id = std::string_view(request.path).substr(sessions_prefix.size());
    auto deleted = m_store.delete_session(id, wall_clock_ms());
    if (!deleted)
        return store_failure(deleted.error(), "revoking a session");
    if (!deleted.value())
        return Response::error(404, "not_found", "no session with id \"" + std::string(id) + "\"");
    log::info("session %s revoked", std::string(id).c_str());
    Response response { 204, {}, {} };
    if (caller.session_id == id)
        response.headers.set("Set-Cookie", ended_session_cookie(cookie_transport(request)));
    return response;
}

}
