// Envelope: one delivery as it travels between identities, the JSON body of
// `POST /inbox` (PROTOCOL.md, "Delivery"). The worker's inbox parses and
// checks received ones (step 2: shape, fields, version, times); its outbox
// builds the bytes it signs and sends. Pure: no I/O, no clock of its own.
#pragma once

#include "common/result.h"

#include <chrono>
#include <nlohmann/json_fwd.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace posta {

struct Envelope {
    std::string id;           // base64url of 16 bytes, as sent (strict decoding makes it canonical)
    std::string from;         // the sender's identity URL, canonical (parse_identity_url)
    std::string to;           // the recipient's identity URL, canonical
    std::string sent_at;      // RFC 3339 UTC as sent, with 'T' and 'Z' in upper case
    std::chrono::system_clock::time_point sent_at_time {};
    std::string subject;      // may be empty
    std::string content_type; // a media type: "text/plain", "text/markdown; charset=utf-8"
    std::string body;         // may be empty

    // The exact request body parse_envelope() read, byte for byte: what the
    // Posta-Signature covers. Empty in an envelope built for sending.
    std::string raw;
};

// How far in the future a sent_at may lie (clock skew between servers).
constexpr std::chrono::minutes max_future_skew { 5 };

// Why a received envelope was refused. Every one is answered with 400 and
// {"error": code(), "message": message}.
enum class EnvelopeProblem : uint8_t {
    MalformedJson,      // malformed_json: not JSON (or not UTF-8), or empty
    NotAnObject,        // not_an_object: JSON, but not an object
    DuplicateField,     // duplicate_field: a field of the protocol given twice
    MissingField,       // missing_field
    WrongType,          // wrong_type: e.g. a number where a string belongs
    UnsupportedVersion, // unsupported_version: posta is not the integer 1
    InvalidId,          // invalid_id: not unpadded base64url of exactly 16 bytes
    InvalidUrl,         // invalid_url: from or to is not an identity URL
    InvalidTime,        // invalid_time: sent_at is not an RFC 3339 UTC time
    SentInFuture,       // sent_in_future: sent_at more than max_future_skew ahead
    InvalidContentType, // invalid_content_type: not type/subtype[; parameters]
};

// The machine code of a problem: "malformed_json", "missing_field", ...
std::string_view envelope_problem_code(EnvelopeProblem);

struct EnvelopeRejection {
    EnvelopeProblem problem {};
    std::string field;   // the field at fault ("sent_at"); empty for the body as a whole
    std::string message; // one sentence for the sender: what is wrong and what is expected

    std::string_view code() const { return envelope_problem_code(problem); }
    static constexpr int http_status = 400;
};

// Parses and checks a delivery body; on success the body is kept, unchanged,
// in Envelope::raw (pass it by std::move to avoid a copy of up to
// max_body_bytes). `now` is the wall clock, for the future check.
//
// Checks, in this order, and refuses with the first problem found: valid
// UTF-8 JSON; a top-level object; no protocol field twice; `posta` present,
// a number and the integer 1 (first, so that an envelope of another version
// is refused as such and not for a field it lacks); then id, from, to,
// sent_at, subject, content_type, body each present and a string; then the
// values of id, from, to (both stored canonical), sent_at, content_type.
// Fields this version does not know are accepted and ignored (skipped while
// parsing, never stored), so a later minor version can add fields without
// breaking older receivers; they are still covered by the signature.
// The body's size limit (413) is the HTTP layer's, before this is called.
Result<Envelope, EnvelopeRejection> parse_envelope(std::string body, std::chrono::system_clock::time_point now);

// The delivery body for `envelope`: compact JSON, fields in the protocol's
// order (posta, id, from, to, sent_at, subject, content_type, body), UTF-8 as
// is. The fields are written as given, not checked (they are our own); any
// invalid UTF-8 is replaced with U+FFFD rather than thrown. `raw` and
// `sent_at_time` are ignored. parse_envelope() of the result gives the same
// fields back.
std::string make_envelope_json(Envelope const& envelope);

// A fresh message id: 16 random bytes (libsodium; sodium_init() first), in
// base64url without padding (22 characters).
std::string make_message_id();

// Whether `value` is a media type as RFC 9110 section 8.3.1 writes one:
// token "/" token, then optional parameters after ';' in printable ASCII;
// at most 255 characters. Shared by the inbox and the owner API.
bool is_valid_content_type(std::string_view value);

// "a number", "an array", ...: for messages about a JSON value of the wrong
// type. Shared by the envelope parser and the owner API.
std::string describe_json_type(nlohmann::json const&);

}
