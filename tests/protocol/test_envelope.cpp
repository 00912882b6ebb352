#include "protocol/envelope.h"

#include "protocol/base64url.h"
#include "protocol/timestamp.h"

#include <algorithm>
#include <array>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

using namespace posta;
using nlohmann::ordered_json;

namespace {

// 2026-11-27T09:00:00Z, the receiver's clock in these tests.
std::chrono::system_clock::time_point const now { std::chrono::seconds(1795770000) };

// A valid delivery; tests change one field at a time.
ordered_json valid_doc()
{
    return ordered_json {
        { "posta", 1 },
        { "id", "AAECAwQFBgcICQoLDA0ODw" },
        { "from", "http://arne.local:8080" },
        { "to", "https://marcus.example" },
        { "sent_at", "2026-11-27T08:59:00Z" },
        { "subject", "Hello" },
        { "content_type", "text/plain" },
        { "body", "Hi Marcus" },
    };
}

Result<Envelope, EnvelopeRejection> parse(ordered_json const& doc)
{
    return parse_envelope(doc.dump(), now);
}

Result<Envelope, EnvelopeRejection> parse_with(char const* field, ordered_json value)
{
    auto doc = valid_doc();
    doc[field] = std::move(value);
    return parse(doc);
}

// True when `result` is a rejection with `code` for `field`; says why not.
bool rejected(Result<Envelope, EnvelopeRejection> const& result, std::string_view code, std::string_view field)
{
    if (result.ok()) {
        MESSAGE("accepted");
        return false;
    }
    auto const& rejection = result.error();
    bool matches = rejection.code() == code && rejection.field == field && !rejection.message.empty();
    if (!matches)
        MESSAGE("got ", rejection.code(), " on \"", rejection.field, "\": ", rejection.message);
    return matches;
}

struct SodiumInit {
    SodiumInit() { REQUIRE(sodium_init() >= 0); }
};

}

TEST_CASE("a valid delivery parses with every field")
{
    auto result = parse(valid_doc());
    REQUIRE(result.ok());
    Envelope const& envelope = result.value();
    CHECK(envelope.id == "AAECAwQFBgcICQoLDA0ODw");
    CHECK(envelope.from == "http://arne.local:8080");
    CHECK(envelope.to == "https://marcus.example");
    CHECK(envelope.sent_at == "2026-11-27T08:59:00Z");
    CHECK(envelope.sent_at_time == now - std::chrono::minutes(1));
    CHECK(envelope.subject == "Hello");
    CHECK(envelope.content_type == "text/plain");
    CHECK(envelope.body == "Hi Marcus");
}

TEST_CASE("the exact body bytes are kept for signature verification")
{
    std::string body = "  {\"posta\":1, \"id\":\"AAECAwQFBgcICQoLDA0ODw\",\"from\":\"http://arne.local:8080\","
                       "\"to\":\"https://marcus.example\",\"sent_at\":\"2026-11-27T08:59:00Z\",\"subject\":\"\","
                       "\"content_type\":\"text/plain\",\"body\":\"caf\\u00e9\"}\n";
    auto result = parse_envelope(body, now);
    REQUIRE(result.ok());
    CHECK(result->raw == body);
    CHECK(result->body == "caf\xc3\xa9");
}

TEST_CASE("from and to are stored in canonical form")
{
    auto doc = valid_doc();
    doc["from"] = "HTTP://Arne.Local.:8080/";
    doc["to"] = "https://MARCUS.example:443";
    auto result = parse(doc);
    REQUIRE(result.ok());
    CHECK(result->from == "http://arne.local:8080");
    CHECK(result->to == "https://marcus.example");
}

TEST_CASE("an empty subject and an empty body are accepted")
{
    auto doc = valid_doc();
    doc["subject"] = "";
    doc["body"] = "";
    CHECK(parse(doc).ok());
}

TEST_CASE("unknown fields are accepted and ignored")
{
    auto doc = valid_doc();
    doc["reply_to"] = "http://elsewhere.example";
    doc["extensions"] = { { "deep", { 1, 2, { { "x", nullptr } } } } };
    doc["attachments"] = ordered_json::array({ 1, "two" });
    auto result = parse(doc);
    REQUIRE(result.ok());
    CHECK(result->subject == "Hello");
}

TEST_CASE("a deeply nested unknown field is skipped without trouble")
{
    std::string nested(100000, '[');
    nested += std::string(100000, ']');
    std::string body = valid_doc().dump();
    body.insert(1, "\"junk\":" + nested + ",");
    CHECK(parse_envelope(body, now).ok());
}

TEST_CASE("a body that is not JSON is refused as malformed_json")
{
    for (std::string body : { "", "{", "posta", "{\"posta\":1,}", "{'posta':1}", "{} {}" }) {
        CAPTURE(body);
        CHECK(rejected(parse_envelope(body, now), "malformed_json", ""));
    }
    std::string trailing = valid_doc().dump() + "x";
    CHECK(rejected(parse_envelope(trailing, now), "malformed_json", ""));
}

TEST_CASE("a body with invalid UTF-8 is refused as malformed_json")
{
    auto body = valid_doc().dump();
    body.replace(body.find("Hi Marcus"), 2, "\xff\xfe");
    CHECK(rejected(parse_envelope(body, now), "malformed_json", ""));
}

TEST_CASE("a JSON value other than an object is refused as not_an_object")
{
    for (std::string body : { "[]", "\"hello\"", "1", "null", "true", "[{\"posta\":1}]" }) {
        CAPTURE(body);
        CHECK(rejected(parse_envelope(body, now), "not_an_object", ""));
    }
}

TEST_CASE("a protocol field given twice is refused as duplicate_field")
{
    auto body = valid_doc().dump();
    body.insert(1, "\"to\":\"https://mallory.example\",");
    CHECK(rejected(parse_envelope(body, now), "duplicate_field", "to"));
}

TEST_CASE("an unknown field given twice is ignored like any unknown field")
{
    auto body = valid_doc().dump();
    body.insert(1, "\"x\":1,\"x\":2,");
    CHECK(parse_envelope(body, now).ok());
}

TEST_CASE("every missing field is refused as missing_field naming it")
{
    auto const fields = valid_doc();
    for (auto const& item : fields.items()) {
        std::string const name = item.key();
        CAPTURE(name);
        auto doc = valid_doc();
        doc.erase(name);
        CHECK(rejected(parse(doc), "missing_field", name));
    }
}

TEST_CASE("every field of the wrong type is refused as wrong_type naming it")
{
    auto const fields = valid_doc();
    for (auto const& item : fields.items()) {
        std::string const name = item.key();
        CAPTURE(name);
        for (ordered_json wrong : { ordered_json(nullptr), ordered_json(true), ordered_json::array(), ordered_json::object() }) {
            CAPTURE(wrong.dump());
            CHECK(rejected(parse_with(name.c_str(), wrong), "wrong_type", name));
        }
        if (name != "posta") {
            CHECK(rejected(parse_with(name.c_str(), 7), "wrong_type", name));
        }
    }
    CHECK(rejected(parse_with("posta", "1"), "wrong_type", "posta"));
}

TEST_CASE("a posta version other than 1 is refused as unsupported_version")
{
    CHECK(rejected(parse_with("posta", 2), "unsupported_version", "posta"));
    CHECK(rejected(parse_with("posta", 0), "unsupported_version", "posta"));
    CHECK(rejected(parse_with("posta", -1), "unsupported_version", "posta"));
    CHECK(rejected(parse_with("posta", 1.5), "unsupported_version", "posta"));
    CHECK(rejected(parse_with("posta", 1.0), "unsupported_version", "posta"));
}

TEST_CASE("the version is checked before the other fields")
{
    ordered_json doc = { { "posta", 2 }, { "envelope", "of another shape" } };
    CHECK(rejected(parse(doc), "unsupported_version", "posta"));
}

TEST_CASE("an id that is not base64url of exactly 16 bytes is refused as invalid_id")
{
    for (std::string id : {
             "",
             "AAECAwQFBgcICQoLDA0OD",      // 15 bytes and a bit
             "AAECAwQFBgcICQoLDA0ODxA",    // 17 bytes
             "AAECAwQFBgcICQoLDA0ODw==",   // padded
             "AAECAwQFBgcICQoLDA0OD+",     // standard base64
             "AAECAwQFBgcICQoLDA0OD/",     // standard base64
             "AAECAwQFBgcICQoLDA0ODx",     // unused bits set: not canonical
             "AAECAwQFBgcI CQoLDA0ODw",    // a space inside
             "message-1",
         }) {
        CAPTURE(id);
        CHECK(rejected(parse_with("id", id), "invalid_id", "id"));
    }
}

TEST_CASE("a from or to that is not an identity URL is refused as invalid_url")
{
    for (char const* field : { "from", "to" }) {
        for (std::string url : { "", "arne.local", "ftp://arne.local", "http://user@arne.local",
                 "http://arne.local/inbox", "http://arne.local?x", "http://arne.local:0", "http://bücher.example" }) {
            CAPTURE(field);
            CAPTURE(url);
            CHECK(rejected(parse_with(field, url), "invalid_url", field));
        }
    }
}

TEST_CASE("an overlong from is refused without being echoed back")
{
    std::string url = "http://" + std::string(5000, 'a') + ".example";
    auto result = parse_with("from", url);
    CHECK(rejected(result, "invalid_url", "from"));
    CHECK(result.error().message.size() < 200);
}

TEST_CASE("an overlong sent_at is refused without being echoed back")
{
    auto result = parse_with("sent_at", "2026-11-27T08:59:00." + std::string(5000, '0') + "Z");
    CHECK(rejected(result, "invalid_time", "sent_at"));
    CHECK(result.error().message.size() < 200);
}

TEST_CASE("a sent_at that is not RFC 3339 UTC is refused as invalid_time")
{
    for (std::string time : { "", "2026-11-27 08:59:00Z", "2026-11-27T08:59:00+00:00", "2026-11-27T08:59:00",
             "1795769940", "2026-02-30T08:59:00Z", "yesterday" }) {
        CAPTURE(time);
        CHECK(rejected(parse_with("sent_at", time), "invalid_time", "sent_at"));
    }
}

TEST_CASE("a sent_at more than five minutes ahead is refused as sent_in_future")
{
    CHECK(rejected(parse_with("sent_at", "2026-11-27T09:05:01Z"), "sent_in_future", "sent_at"));
    CHECK(rejected(parse_with("sent_at", "2027-01-01T00:00:00Z"), "sent_in_future", "sent_at"));
    CHECK(rejected(parse_with("sent_at", "2026-11-27T09:05:00.001Z"), "sent_in_future", "sent_at"));
}

TEST_CASE("a sent_at up to five minutes ahead or in the past is accepted")
{
    CHECK(parse_with("sent_at", "2026-11-27T09:05:00Z").ok());
    CHECK(parse_with("sent_at", "2026-11-27T09:00:00Z").ok());
    CHECK(parse_with("sent_at", "2026-11-24T09:00:00Z").ok());
    CHECK(parse_with("sent_at", "2001-01-01T00:00:00Z").ok());
}

TEST_CASE("a sent_at with lower-case t and z is stored in upper case")
{
    auto result = parse_with("sent_at", "2026-11-27t08:59:00.5z");
    REQUIRE(result.ok());
    CHECK(result->sent_at == "2026-11-27T08:59:00.5Z");
}

TEST_CASE("a content_type that is not a media type is refused as invalid_content_type")
{
    for (std::string type : std::initializer_list<std::string> { "", "text", "text/", "/plain", "text /plain", "text/ plain", "text/plain ",
             "text/plain extra", "text/plain\r\nX-Evil: 1", "text/plain;\x01", "tëxt/plain", "text/plain/more",
             std::string(250, 'a') + "/plain" }) {
        CAPTURE(type);
        CHECK(rejected(parse_with("content_type", type), "invalid_content_type", "content_type"));
    }
}

TEST_CASE("a content_type with parameters is accepted")
{
    CHECK(is_valid_content_type("text/plain"));
    CHECK(is_valid_content_type("text/markdown; charset=utf-8"));
    CHECK(is_valid_content_type("text/plain;charset=\"utf-8\""));
    CHECK(is_valid_content_type("application/vnd.posta+json"));
}

TEST_CASE("make_envelope_json writes compact JSON in the protocol's field order")
{
    Envelope envelope;
    envelope.id = "AAECAwQFBgcICQoLDA0ODw";
    envelope.from = "http://arne.local:8080";
    envelope.to = "https://marcus.example";
    envelope.sent_at = "2026-11-27T08:59:00Z";
    envelope.subject = "Tea \"at\" 5";
    envelope.content_type = "text/plain";
    envelope.body = "Line 1\nLine 2 \xe2\x9c\x93";
    CHECK(make_envelope_json(envelope)
        == "{\"posta\":1,\"id\":\"AAECAwQFBgcICQoLDA0ODw\",\"from\":\"http://arne.local:8080\","
           "\"to\":\"https://marcus.example\",\"sent_at\":\"2026-11-27T08:59:00Z\",\"subject\":\"Tea \\\"at\\\" 5\","
           "\"content_type\":\"text/plain\",\"body\":\"Line 1\\nLine 2 \xe2\x9c\x93\"}");
}

TEST_CASE("an envelope built for sending parses back to the same fields")
{
    auto original = parse(valid_doc());
    REQUIRE(original.ok());
    std::string json = make_envelope_json(original.value());
    auto again = parse_envelope(json, now);
    REQUIRE(again.ok());
    CHECK(again->id == original->id);
    CHECK(again->from == original->from);
    CHECK(again->to == original->to);
    CHECK(again->sent_at == original->sent_at);
    CHECK(again->subject == original->subject);
    CHECK(again->content_type == original->content_type);
    CHECK(again->body == original->body);
    CHECK(again->raw == json);
}

TEST_CASE("make_envelope_json replaces invalid UTF-8 instead of throwing")
{
    Envelope envelope;
    envelope.body = "bad \xff byte";
    std::string json;
    CHECK_NOTHROW(json = make_envelope_json(envelope));
    CHECK(json.find("bad \xef\xbf\xbd byte") != std::string::npos);
}

TEST_CASE("a fresh message id is 16 random bytes in base64url")
{
    SodiumInit sodium;
    std::string first = make_message_id();
    std::string second = make_message_id();
    CHECK(first.size() == 22);
    std::array<unsigned char, 16> bytes {};
    CHECK(base64url_decode_exact(first, bytes));
    CHECK(first != second);
    CHECK(parse_with("id", first).ok());
}

TEST_CASE("every problem has its own machine code")
{
    std::vector<std::string_view> codes;
    for (int i = 0; i <= static_cast<int>(EnvelopeProblem::InvalidContentType); ++i)
        codes.push_back(envelope_problem_code(static_cast<EnvelopeProblem>(i)));
    std::sort(codes.begin(), codes.end());
    CHECK(std::adjacent_find(codes.begin(), codes.end()) == codes.end());
    CHECK(std::find(codes.begin(), codes.end(), "invalid_envelope") == codes.end());
}
