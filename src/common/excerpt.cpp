#include "excerpt.h"

#include <algorithm>

namespace posta {

namespace {

// The length of the valid UTF-8 sequence at the start of `text` (RFC 3629:
// no overlongs, no surrogates, nothing above U+10FFFF), 0 when there is none.
size_t utf8_length(std::string_view text)
{
    auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
    unsigned char lead = byte(0);
    size_t length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3
        : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (length == 0 || length > text.size())
        return 0;
    for (size_t i = 1; i < length; ++i) {
        if ((byte(i) & 0xc0) != 0x80)
            return 0;
    }
    if (length == 3 && ((lead == 0xe0 && byte(1) < 0xa0) || (lead == 0xed && byte(1) > 0x9f)))
        return 0;
    if (length == 4 && ((lead == 0xf0 && byte(1) < 0x90) || (lead == 0xf4 && byte(1) > 0x8f)))
        return 0;
    return length;
}

}

std::string printable_excerpt(std::string_view text, size_t max_bytes)
{
    constexpr std::string_view ellipsis = "...";
    // Cleaning never makes a piece longer, so text that fits stays whole.
    bool cut = text.size() > max_bytes;
    size_t room = cut ? max_bytes - std::min(max_bytes, ellipsis.size()) : max_bytes;
    std::string out;
    for (size_t i = 0; i < text.size();) {
        size_t length = utf8_length(text.substr(i));
        auto c = static_cast<unsigned char>(text[i]);
        std::string_view piece = text.substr(i, length);
        if (length == 0 || (length == 1 && (c < 0x20 || c == 0x7f))
            || (length == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0)) // C1
            piece = (c == '\t' || c == '\n' || c == '\r') ? " " : "?";
        if (out.size() + piece.size() > room)
            break;
        out += piece;
        i += length ? length : 1;
    }
    if (cut)
        out += ellipsis.substr(0, max_bytes - out.size());
    return out;
}

}
