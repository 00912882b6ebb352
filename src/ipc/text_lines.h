// The line-based text forms of the channel's messages (policy, metrics
// report, the address ranges of a worker start): every line ends in '\n'.
#pragma once

#include "common/result.h"

#include <string_view>
#include <vector>

namespace posta {

// The lines of `text`, without their '\n'; an error naming `what` when the
// last one is unterminated.
Result<std::vector<std::string_view>> split_lines(std::string_view text, char const* what);

}
