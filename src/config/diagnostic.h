// Diagnostics: the errors found while reading an operator's file (manifest,
// config, ACL). Each names the file, the line and what to change; a parse
// returns all of them, not just the first, so one `check` run shows every fix.
#pragma once

#include <string>
#include <vector>

namespace posta {

struct Diagnostic {
    std::string file;
    int line = 0; // 1-based; 0 when the problem is the file as a whole
    std::string message;

    // "identities.toml:7: duplicate slug "arne" (first at line 3); give each identity its own slug"
    std::string text() const
    {
        if (line > 0)
            return file + ":" + std::to_string(line) + ": " + message;
        return file + ": " + message;
    }
};

using Diagnostics = std::vector<Diagnostic>;

// What a parse of an operator file gives: the value and every error found.
// The value is meaningful only when `errors` is empty.
template<typename T>
struct Parsed {
    T value {};
    Diagnostics errors;
    bool ok() const { return errors.empty(); }
};

}
