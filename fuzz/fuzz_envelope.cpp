// Fuzz target: a delivery body as POST /inbox receives it from anyone
// (parse_envelope), and the RFC 3339 times and media types inside it. An
// accepted envelope must hold canonical fields, and what the outbox would
// send for it (make_envelope_json) must parse back to the same fields:
// otherwise a message accepted here could not be relayed or re-read.
#include "common/host_key.h"
#include "fuzz_invariant.h"
#include "protocol/base64url.h"
#include "protocol/envelope.h"
#include "protocol/timestamp.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

using namespace posta;
using posta::fuzz::require;

namespace {

// A fixed clock, so that a crash reproduces whenever it is replayed.
std::chrono::system_clock::time_point const now = std::chrono::system_clock::time_point(std::chrono::seconds(1795770000));

void check_time(std::string_view text)
{
    auto time = parse_rfc3339(text);
    if (!time)
        return;
    auto whole = std::chrono::floor<std::chrono::seconds>(*time);
    auto again = parse_rfc3339(format_rfc3339(*time));
    require(again.ok() && *again == whole, "format_rfc3339 of a parsed time does not parse back to its whole seconds");
}

void check_envelope(Envelope const& e, std::string_view input)
{
    require(e.raw == input, "raw is not the body as received");
    std::array<unsigned char, 16> id {};
    require(base64url_decode_exact(e.id, id), "an accepted id does not decode to 16 bytes");
    for (std::string const* url : { &e.from, &e.to }) {
        auto parsed = parse_identity_url(*url);
        require(parsed.ok() && parsed->canonical == *url, "an accepted URL is not stored canonical");
    }
    require(e.sent_at_time <= now + max_future_skew, "an accepted sent_at is in the future");
    require(is_valid_content_type(e.content_type), "an accepted content type is not valid");

    auto again = parse_envelope(make_envelope_json(e), now);
    require(again.ok(), "the JSON made for an accepted envelope is refused");
    Envelope const& a = again.value();
    require(a.id == e.id && a.from == e.from && a.to == e.to && a.sent_at == e.sent_at && a.sent_at_time == e.sent_at_time
            && a.subject == e.subject && a.content_type == e.content_type && a.body == e.body,
        "an accepted envelope does not survive make_envelope_json and parse_envelope");
}

}

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view input(reinterpret_cast<char const*>(data), size);

    check_time(input);
    (void)is_valid_content_type(input);

    auto result = parse_envelope(std::string(input), now);
    if (result.ok()) {
        check_envelope(result.value(), input);
    } else {
        EnvelopeRejection const& r = result.error();
        require(!r.message.empty() && r.code() != "invalid_envelope", "a rejection has no message or an unknown code");
    }
    return 0;
}
