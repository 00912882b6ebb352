// What the owner API reads from a request (ApiServer, api_server.h): the
// query string's parameters and a JSON object body, and the fields of
// either, each checked as PROTOCOL.md's "Owner API" says. Every function
// returns the value or the Response to answer instead: 400 with a code and
// a message naming the parameter or field (415 for a body that is not
// JSON). Pure: no I/O, no state.
#pragma once

#include "common/result.h"
#include "http/http_message.h"
#include "worker/store_records.h"

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace posta {

// How many recipients one message may name in "to".
constexpr size_t max_recipients = 100;

// 400 with this error code and message (PROTOCOL.md's error object).
Response bad_request(std::string_view code, std::string const& message);

// A query string's parameters, percent-decoded ('+' is a space), by name.
using Query = std::map<std::string, std::string, std::less<>>;

// Parses `query` (without its '?'); a malformed percent-escape or a
// parameter given twice is the 400.
Result<Query, Response> parse_query(std::string_view query);

// The value of the parameter `name`, if given.
std::optional<std::string_view> parameter(Query const& query, std::string_view name);

// "box": nullopt when absent, else "inbox" or "sent"; another value is the 400.
Result<std::optional<Box>, Response> box_parameter(Query const& query);

// The request body as a JSON object whose fields are all in `known`, each
// at most once; or the 415 (no Content-Type: application/json) or 400
// (malformed, not an object, a field twice, a field not known) for it.
Result<nlohmann::json, Response> json_object_body(Request const& request, std::span<std::string_view const> known);

// A string field of `object`, moved out: its value, `fallback` when absent
// (nullopt: the field is required), or the 400.
Result<std::string, Response> string_field(
    nlohmann::json& object, char const* name, std::optional<std::string> fallback);

// "to": one identity URL or a non-empty array of at most max_recipients of
// them, canonical and without repeats, in the order given; or the 400.
Result<std::vector<std::string>, Response> recipients_field(nlohmann::json const& object);

}
