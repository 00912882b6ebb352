#include "base64url.h"

#include <sodium.h>

namespace posta {

std::string base64url_encode(std::span<unsigned char const> bytes)
{
    constexpr int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    std::string out(sodium_base64_ENCODED_LEN(bytes.size(), variant), '\0');
    sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), variant);
    out.resize(out.size() - 1); // the terminating NUL
    return out;
}

bool base64url_decode_exact(std::string_view text, std::span<unsigned char> out)
{
    size_t decoded = 0;
    // No `ignore` characters and no end pointer: any character outside the
    // alphabet, and any padding, makes the whole decode fail.
    int rc = sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &decoded,
        nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return rc == 0 && decoded == out.size();
}

}
