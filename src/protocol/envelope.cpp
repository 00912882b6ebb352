// Parsing runs nlohmann::json with a parser callback: it skips the values of
// top-level fields this version does not know (so junk under an unknown name
// never becomes a tree in memory), and notes a protocol field given twice
// (nlohmann would silently keep the last, while another implementation might
// keep the first; I-JSON, RFC 7493 section 2.3, forbids duplicates).
// Exceptions from nlohmann are caught here and become rejections; none leave.
#include "envelope.h"

#include "protocol/base64url.h"
#include "common/host_key.h"
#include "protocol/timestamp.h"

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <sodium.h>

namespace posta {

namespace {

using nlohmann::json;

constexpr size_t id_bytes = 16;
constexpr size_t max_content_type = 255;
constexpr size_t max_url = 300;

// The fields of a version 1 envelope, in the protocol's order.
constexpr std::array<std::string_view, 8> known_fields = { "posta", "id", "from", "to", "sent_at",
    "subject", "content_type", "body" };

EnvelopeRejection reject(EnvelopeProblem problem, std::string field, std::string message)
{
    return EnvelopeRejection { problem, std::move(field), std::move(message) };
}

// The string value of field `name`, or the rejection for its absence or type.
std::variant<std::string, EnvelopeRejection> string_field(json& object, char const* name)
{
    auto it = object.find(name);
    if (it == object.end())
        return reject(EnvelopeProblem::MissingField, name,
            std::string("the delivery has no \"") + name + "\" field; every delivery needs posta, id, from, to, sent_at, subject, content_type and body");
    if (!it->is_string())
        return reject(EnvelopeProblem::WrongType, name,
            std::string("\"") + name + "\" is " + describe_json_type(*it) + "; it must be a string");
    return std::move(it->get_ref<std::string&>());
}

std::optional<EnvelopeRejection> check_version(json const& object)
{
    auto it = object.find("posta");
    if (it == object.end())
        return reject(EnvelopeProblem::MissingField, "posta",
            "the delivery has no \"posta\" field; a version 1 delivery has \"posta\": 1");
    if (!it->is_number())
        return reject(EnvelopeProblem::WrongType, "posta",
            "\"posta\" is " + describe_json_type(*it) + "; it must be the number 1");
    bool one = (it->is_number_integer() && it->get<int64_t>() == 1)
        || (it->is_number_unsigned() && it->get<uint64_t>() == 1);
    if (!one)
        return reject(EnvelopeProblem::UnsupportedVersion, "posta",
            "this server speaks posta version 1 only, and the delivery says \"posta\": " + it->dump());
    return std::nullopt;
}

std::optional<EnvelopeRejection> check_id(std::string const& id)
{
    std::array<unsigned char, id_bytes> bytes {};
    if (!base64url_decode_exact(id, bytes))
        return reject(EnvelopeProblem::InvalidId, "id",
            "\"id\" must be 16 bytes in base64url without padding (22 characters of A-Z a-z 0-9 - _)");
    return std::nullopt;
}

std::optional<EnvelopeRejection> canonicalize_url(std::string& url, char const* name)
{
    // A host name is at most 253 characters; with scheme, port and '/' an
    // identity URL fits in 300. Longer is refused before it is echoed back.
    if (url.size() > max_url)
        return reject(EnvelopeProblem::InvalidUrl, name,
            std::string("\"") + name + "\" is longer than " + std::to_string(max_url) + " characters; an identity URL is only scheme://host[:port]");
    auto parsed = parse_identity_url(url);
    if (!parsed)
        return reject(EnvelopeProblem::InvalidUrl, name,
            std::string("\"") + name + "\" is not an identity URL: " + parsed.error().detail);
    url = std::move(parsed->canonical);
    return std::nullopt;
}

std::optional<EnvelopeRejection> check_sent_at(Envelope& envelope, std::chrono::system_clock::time_point now)
{
    auto time = parse_rfc3339(envelope.sent_at);
    if (!time)
        return reject(EnvelopeProblem::InvalidTime, "sent_at", "\"sent_at\": " + time.error().detail);
    if (*time > now + max_future_skew)
        return reject(EnvelopeProblem::SentInFuture, "sent_at",
            "\"sent_at\" is more than 5 minutes in the future; check the sending server's clock");
    envelope.sent_at_time = *time;
    // Only 'T' and 'Z' can be lower case in a time parse_rfc3339() accepts.
    for (char& c : envelope.sent_at) {
        if (c == 't' || c == 'z')
            c = static_cast<char>(c - 'a' + 'A');
    }
    return std::nullopt;
}

bool is_tchar(char c)
{
    // RFC 9110 section 5.6.2.
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}

std::string_view envelope_problem_code(EnvelopeProblem problem)
{
    switch (problem) {
    case EnvelopeProblem::MalformedJson:
        return "malformed_json";
    case EnvelopeProblem::NotAnObject:
        return "not_an_object";
    case EnvelopeProblem::DuplicateField:
        return "duplicate_field";
    case EnvelopeProblem::MissingField:
        return "missing_field";
    case EnvelopeProblem::WrongType:
        return "wrong_type";
    case EnvelopeProblem::UnsupportedVersion:
        return "unsupported_version";
    case EnvelopeProblem::InvalidId:
        return "invalid_id";
    case EnvelopeProblem::InvalidUrl:
        return "invalid_url";
    case EnvelopeProblem::InvalidTime:
        return "invalid_time";
    case EnvelopeProblem::SentInFuture:
        return "sent_in_future";
    case EnvelopeProblem::InvalidContentType:
        return "invalid_content_type";
    }
    return "invalid_envelope";
}

bool is_valid_content_type(std::string_view value)
{
    if (value.empty() || value.size() > max_content_type)
        return false;
    size_t slash = value.find('/');
    if (slash == 0 || slash == std::string_view::npos)
        return false;
    size_t pos = 0;
    for (; pos < slash; ++pos) {
        if (!is_tchar(value[pos]))
            return false;
    }
    size_t first = ++pos;
    while (pos < value.size() && is_tchar(value[pos]))
        ++pos;
    if (pos == first)
        return false;
    // Parameters: optional white space, then ';' and printable ASCII. Their
    // inner grammar is the reader's business; only controls and non-ASCII,
    // which could break a header or a log line, are refused here.
    if (pos == value.size())
        return true;
    while (pos < value.size() && (value[pos] == ' ' || value[pos] == '\t'))
        ++pos;
    if (pos == value.size() || value[pos] != ';')
        return false;
    for (; pos < value.size(); ++pos) {
        auto c = static_cast<unsigned char>(value[pos]);
        if ((c < 0x20 && c != '\t') || c >= 0x7f)
            return false;
    }
    return true;
}

Result<Envelope, EnvelopeRejection> parse_envelope(std::string body, std::chrono::system_clock::time_point now)
{
    if (body.empty())
        return reject(EnvelopeProblem::MalformedJson, {}, "the body is empty; a delivery is a JSON object");

    std::string duplicate;
    json::parser_callback_t on_event = [&duplicate, seen = std::array<bool, known_fields.size()> {}](
                                           int depth, json::parse_event_t event, json& parsed) mutable {
        if (depth != 1 || event != json::parse_event_t::key)
            return true;
        auto const& name = parsed.get_ref<std::string const&>();
        for (size_t i = 0; i < known_fields.size(); ++i) {
            if (name == known_fields[i]) {
                if (seen[i] && duplicate.empty())
                    duplicate = name;
                seen[i] = true;
                return true;
            }
        }
        return false; // an unknown field: skip its value
    };

    json doc;
    try {
        doc = json::parse(body, on_event);
    } catch (json::parse_error const& error) {
        // nlohmann refuses invalid UTF-8 in strings, too.
        return reject(EnvelopeProblem::MalformedJson, {},
            "the body is not valid UTF-8 JSON (at byte " + std::to_string(error.byte) + ")");
    } catch (json::exception const& error) {
        return reject(EnvelopeProblem::MalformedJson, {}, std::string("the body could not be read as JSON: ") + error.what());
    }
    if (!doc.is_object())
        return reject(EnvelopeProblem::NotAnObject, {}, "the body is " + describe_json_type(doc) + "; a delivery is a JSON object");
    if (!duplicate.empty())
        return reject(EnvelopeProblem::DuplicateField, duplicate,
            "the field \"" + duplicate + "\" appears more than once; give each field once");
    if (auto problem = check_version(doc))
        return std::move(*problem);

    Envelope envelope;
    std::pair<char const*, std::string*> const fields[] = {
        { "id", &envelope.id },
        { "from", &envelope.from },
        { "to", &envelope.to },
        { "sent_at", &envelope.sent_at },
        { "subject", &envelope.subject },
        { "content_type", &envelope.content_type },
        { "body", &envelope.body },
    };
    // Presence and type of every field first, then their values, each in the
    // protocol's order, so the first problem reported is the most basic one.
    for (auto const& [name, target] : fields) {
        auto value = string_field(doc, name);
        if (auto* rejection = std::get_if<EnvelopeRejection>(&value))
            return std::move(*rejection);
        *target = std::move(std::get<std::string>(value));
    }
    if (auto problem = check_id(envelope.id))
        return std::move(*problem);
    if (auto problem = canonicalize_url(envelope.from, "from"))
        return std::move(*problem);
    if (auto problem = canonicalize_url(envelope.to, "to"))
        return std::move(*problem);
    if (auto problem = check_sent_at(envelope, now))
        return std::move(*problem);
    if (!is_valid_content_type(envelope.content_type))
        return reject(EnvelopeProblem::InvalidContentType, "content_type",
            "\"content_type\" must be a media type like text/plain (type/subtype, optional parameters after ';')");

    envelope.raw = std::move(body);
    return envelope;
}

std::string make_envelope_json(Envelope const& envelope)
{
    // ordered_json keeps insertion order; plain json would sort the keys.
    nlohmann::ordered_json doc;
    doc["posta"] = 1;
    doc["id"] = envelope.id;
    doc["from"] = envelope.from;
    doc["to"] = envelope.to;
    doc["sent_at"] = envelope.sent_at;
    doc["subject"] = envelope.subject;
    doc["content_type"] = envelope.content_type;
    doc["body"] = envelope.body;
    return doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string make_message_id()
{
    std::array<unsigned char, id_bytes> bytes {};
    randombytes_buf(bytes.data(), bytes.size());
    return base64url_encode(bytes);
}

std::string describe_json_type(json const& value)
{
    switch (value.type()) {
    case json::value_t::null:
        return "null";
    case json::value_t::boolean:
        return "a boolean";
    case json::value_t::string:
        return "a string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
        return "a number";
    case json::value_t::array:
        return "an array";
    case json::value_t::object:
        return "an object";
    default:
        return "not a JSON value";
    }
}

}
