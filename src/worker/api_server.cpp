// Validation happens here, before the store is touched; the store trusts
// what it is given (canonical URLs, a valid media type). Every answer,
// errors included, is JSON in the format of PROTOCOL.md, except 204.
//
// Request bodies must be JSON objects with Content-Type: application/json
// (else 415), each field at most once and no field this version does not
// know (400): a typo such as "subjet" is refused rather than silently
// sending a message without a subject.
#include "api_server.h"

#include "protocol/api_token.h"
#include "common/host_key.h"
#include "common/log.h"
#include "protocol/envelope.h"
#include "worker/message_json.h"
#include "worker/sqlite.h"
#include "http/router.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

namespace posta {

namespace {

using nlohmann::json;

constexpr std::string_view messages_prefix = "/api/messages/";
constexpr int default_limit = 50;
constexpr int max_limit = 500;
constexpr size_t max_recipients = 100;
constexpr size_t max_url = 300;

int64_t now_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Response bad_request(std::string_view code, std::string const& message)
{
    return Response::error(400, code, message);
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

// A query string's parameters, percent-decoded, or the 400 for it.
using Query = std::map<std::string, std::string, std::less<>>;

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::optional<std::string> percent_decode(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%') {
            if (i + 2 >= text.size())
                return std::nullopt;
            int high = hex_value(text[i + 1]);
            int low = hex_value(text[i + 2]);
            if (high < 0 || low < 0)
                return std::nullopt;
            out += static_cast<char>(high * 16 + low);
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

Result<Query, Response> parse_query(std::string_view query)
{
    Query out;
    while (!query.empty()) {
        size_t end = query.find('&');
        std::string_view pair = query.substr(0, end);
        query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
        if (pair.empty())
            continue;
        size_t equals = pair.find('=');
        auto name = percent_decode(pair.substr(0, equals));
        auto value = percent_decode(equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1));
        if (!name || !value)
            return bad_request("invalid_parameter", "the query string has a malformed percent-escape");
        if (out.contains(*name))
            return bad_request("invalid_parameter", "the query parameter \"" + *name + "\" is given more than once");
        out.emplace(std::move(*name), std::move(*value));
    }
    return out;
}

std::optional<std::string_view> parameter(Query const& query, std::string_view name)
{
    auto it = query.find(name);
    if (it == query.end())
        return std::nullopt;
    return std::string_view(it->second);
}

Result<std::optional<Box>, Response> box_parameter(Query const& query)
{
    auto value = parameter(query, "box");
    if (!value)
        return std::optional<Box>();
    auto box = parse_box(*value);
    if (!box)
        return bad_request("invalid_parameter", "box must be \"inbox\" or \"sent\"");
    return box;
}

// Content-Type: application/json, parameters (charset=utf-8) allowed.
bool is_json_media_type(std::optional<std::string_view> content_type)
{
    if (!content_type)
        return false;
    std::string_view type = content_type->substr(0, content_type->find(';'));
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
        type.remove_suffix(1);
    while (!type.empty() && (type.front() == ' ' || type.front() == '\t'))
        type.remove_prefix(1);
    return iequals(type, "application/json");
}

// The request body as a JSON object whose fields are all in `known`, each at
// most once; or the 415/400 for it.
Result<json, Response> json_object_body(Request const& request, std::span<std::string_view const> known)
{
    if (request.headers.count("Content-Type") > 1 || !is_json_media_type(request.headers.get("Content-Type")))
        return Response::error(415, "unsupported_media_type", "the body must be JSON, sent with Content-Type: application/json");
    std::string duplicate;
    std::string unknown;
    std::vector<std::string> seen;
    json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
        if (depth != 1 || event != json::parse_event_t::key)
            return true;
        auto const& name = parsed.get_ref<std::string const&>();
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            if (unknown.empty())
                unknown = name;
            return false; // skip its value
        }
        if (std::find(seen.begin(), seen.end(), name) != seen.end() && duplicate.empty())
            duplicate = name;
        seen.push_back(name);
        return true;
    };
    json doc;
    try {
        doc = json::parse(request.body, on_event);
    } catch (json::parse_error const& error) {
        return bad_request("malformed_json", "the body is not valid UTF-8 JSON (at byte " + std::to_string(error.byte) + ")");
    } catch (json::exception const& error) {
        return bad_request("malformed_json", std::string("the body could not be read as JSON: ") + error.what());
    }
    if (!doc.is_object())
        return bad_request("not_an_object", "the body is " + describe_json_type(doc) + "; it must be a JSON object");
    if (!duplicate.empty())
        return bad_request("duplicate_field", "the field \"" + duplicate + "\" appears more than once; give each field once");
    if (!unknown.empty()) {
        std::string names;
        for (auto name : known)
            names += (names.empty() ? "" : ", ") + std::string(name);
        return bad_request("unknown_field", "the field \"" + unknown + "\" is not known here; the fields are " + names);
    }
    return doc;
}

// A string field: its value, `fallback` when absent (nullopt: required), or the 400.
Result<std::string, Response> string_field(json& object, char const* name, std::optional<std::string> fallback)
{
    auto it = object.find(name);
    if (it == object.end()) {
        if (fallback)
            return std::move(*fallback);
        return bad_request("missing_field", std::string("the field \"") + name + "\" is required");
    }
    if (!it->is_string())
        return bad_request("wrong_type", std::string("\"") + name + "\" is " + describe_json_type(*it) + "; it must be a string");
    return std::move(it->get_ref<std::string&>());
}

// "to": one identity URL or a non-empty array of them, canonical and without
// repeats, in the order given.
Result<std::vector<std::string>, Response> recipients_field(json const& object)
{
    auto it = object.find("to");
    if (it == object.end())
        return bad_request("missing_field", "the field \"to\" is required: an identity URL or an array of them");
    std::vector<json const*> given;
    if (it->is_string()) {
        given.push_back(&*it);
    } else if (it->is_array()) {
        if (it->empty())
            return bad_request("missing_field", "\"to\" is an empty array; name at least one recipient");
        if (it->size() > max_recipients)
            return bad_request("too_many_recipients",
                "\"to\" names " + std::to_string(it->size()) + " recipients; at most " + std::to_string(max_recipients)
                    + " per message");
        for (auto const& entry : *it)
            given.push_back(&entry);
    } else {
        return bad_request("wrong_type", "\"to\" is " + describe_json_type(*it) + "; it must be a URL or an array of URLs");
    }
    std::vector<std::string> recipients;
    for (auto const* entry : given) {
        if (!entry->is_string())
            return bad_request("wrong_type", "an entry of \"to\" is " + describe_json_type(*entry) + "; each must be a URL string");
        auto const& text = entry->get_ref<std::string const&>();
        if (text.size() > max_url)
            return bad_request("invalid_url",
                "an entry of \"to\" is longer than " + std::to_string(max_url) + " characters; an identity URL is only scheme://host[:port]");
        auto url = parse_identity_url(text);
        if (!url)
            return bad_request("invalid_url", "\"" + text + "\" is not an identity URL: " + url.error().detail);
        if (std::find(recipients.begin(), recipients.end(), url->canonical) == recipients.end())
            recipients.push_back(std::move(url->canonical));
    }
    return recipients;
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
    // Each handler checks the token first; nothing else is read before.
    auto guarded = [this](Response (ApiServer::*handle)(Request const&)) {
        return [this, handle](Request request, Responder responder) {
            if (auto refused = check_token(request)) {
                responder.respond(std::move(*refused));
                return;
            }
            responder.respond((this->*handle)(request));
        };
    };
    router.add("GET", "/api/messages", guarded(&ApiServer::list_messages));
    router.add("POST", "/api/messages", guarded(&ApiServer::send_message));
    for (char const* method : { "GET", "PATCH", "DELETE" })
        router.add_prefix(method, std::string(messages_prefix), guarded(&ApiServer::message));
    router.add("GET", "/api/deliveries", guarded(&ApiServer::list_deliveries));
}

std::optional<Response> ApiServer::check_token(Request const& request)
{
    // Refs: RFC 6750 section 3 (the WWW-Authenticate challenge).
    auto refuse = [](std::string_view message, char const* challenge) {
        Response response = Response::error(401, "unauthorized", message);
        response.headers.set("WWW-Authenticate", challenge);
        return response;
    };
    auto header = request.headers.get("Authorization");
    if (!header || request.headers.count("Authorization") != 1)
        return refuse("this needs Authorization: Bearer <token>; issue one with `posta-server token <slug>`",
            "Bearer realm=\"posta\"");
    std::string_view value = *header;
    constexpr std::string_view scheme = "Bearer ";
    if (value.size() <= scheme.size() || !iequals(value.substr(0, scheme.size()), scheme))
        return refuse("this needs Authorization: Bearer <token>; issue one with `posta-server token <slug>`",
            "Bearer realm=\"posta\"");
    std::string_view token = value.substr(scheme.size());
    while (!token.empty() && token.front() == ' ')
        token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
    auto valid = m_store.verify_token(hash_api_token(token), now_ms());
    if (!valid)
        return store_failure(valid.error(), "checking an API token");
    if (!valid.value())
        return refuse("the token is not valid for this identity", "Bearer realm=\"posta\", error=\"invalid_token\"");
    return std::nullopt;
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

Response ApiServer::list_messages(Request const& request)
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

Response ApiServer::send_message(Request const& request)
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

    auto stored = m_store.create_outgoing(message, now_ms());
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

Response ApiServer::message(Request const& request)
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
        auto deleted = m_store.delete_message(key, now_ms(), m_events);
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

Response ApiServer::list_deliveries(Request const& request)
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

}
