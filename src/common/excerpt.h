// Excerpts of text that came from elsewhere (a remote server's answer, a
// peer's document) for logs and for what the owner API shows: bounded,
// printable, valid UTF-8. Linked by both processes; pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace posta {

// At most `max_bytes` bytes of `text` (cut at a character boundary, "..."
// appended when it was cut), with every control character (C0, DEL, C1)
// and every byte that is not part of valid UTF-8 replaced by '?'. Tabs,
// line feeds and carriage returns become spaces, so the result is one line.
std::string printable_excerpt(std::string_view text, size_t max_bytes);

}
