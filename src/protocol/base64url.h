// base64url without padding (RFC 4648 section 5), the encoding of every
// binary value on the posta wire and in keys.json. Used by the worker's keys,
// identity document and delivery signatures; libsodium does the work.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace posta {

std::string base64url_encode(std::span<unsigned char const> bytes);

// Decodes `text` into exactly `out.size()` bytes. False when the text is not
// strict unpadded base64url or decodes to another length; `out` is then
// unspecified (callers holding secrets wipe it either way).
bool base64url_decode_exact(std::string_view text, std::span<unsigned char> out);

}
