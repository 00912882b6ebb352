// Shared by the parser tests: does a parse report an error at a line?
#pragma once

#include "config/diagnostic.h"

#include <doctest/doctest.h>
#include <initializer_list>
#include <string_view>

namespace posta {

// True when some error is in `file` at `line` and its message contains every
// word; otherwise every error is printed, so a failing CHECK shows them.
inline bool has_error_in(Diagnostics const& errors, std::string_view file, int line,
    std::initializer_list<std::string_view> words)
{
    for (Diagnostic const& d : errors) {
        if (d.line != line || d.file != file)
            continue;
        bool all = true;
        for (std::string_view word : words)
            all = all && d.message.find(word) != std::string::npos;
        if (all)
            return true;
    }
    for (Diagnostic const& d : errors)
        MESSAGE(d.text());
    return false;
}

}
