// Times as the worker writes and reads them: RFC 3339 UTC for JSON
// ("created_at", "received_at", a delivery's "sent_at") and the IMF-fixdate
// of the HTTP Date header.
// Refs: RFC 3339 section 5.6; RFC 9110 section 5.6.7.
#pragma once

#include "common/result.h"

#include <chrono>
#include <string>
#include <string_view>

namespace posta {

// "2026-11-27T09:00:00Z", whole seconds.
std::string format_rfc3339(std::chrono::system_clock::time_point);

// Parses "2026-11-27T09:00:00Z" and "2026-11-27T09:00:00.250Z": a full date,
// 'T', a full time with optional fraction (any number of digits; those below
// the clock's resolution are dropped), and 'Z'. Lower-case 't' and 'z' are
// accepted (RFC 3339 section 5.6 allows them). Refused, with the reason in
// the error's detail: any numeric offset, even "+00:00" (posta times are UTC
// and written with 'Z'), a leap second (":60"; system_clock cannot hold it),
// impossible dates (2026-02-30), times the clock cannot represent, and text
// longer than 64 characters (the error's context is cut to that length).
Result<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

// "Fri, 27 Nov 2026 09:00:00 GMT", independent of the locale.
std::string format_http_date(std::chrono::system_clock::time_point);

// format_http_date of now for a response's Date header, formatted once per
// second and kept per thread; valid until the next call on the thread.
std::string_view http_date_now();

}
