// The owner API's input (api_input.h): query strings and JSON bodies,
// read and checked field by field. Each failure is the 400 (or 415) the
// client reads, with a code and a message that names the field.
#include "api_input.h"

#include "common/host_key.h"
#include "protocol/envelope.h"

#include <algorithm>

namespace posta {

using nlohmann::json;

namespace {

// An identity URL is scheme://host[:port]: a longer entry of "to" is not one.
constexpr size_t max_url = 300;

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

// Content-Type: application/json, parameters (charset=utf-8) allowed.
bool is_json_media_type(std::optional<std::string_view> content_type)
{
    if (!content_type)
        return false;
    return iequals(trim_ows(content_type->substr(0, content_type->find(';'))), "application/json");
}

}

Response bad_request(std::string_view code, std::string const& message)
{
    return Response::error(400, code, message);
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
