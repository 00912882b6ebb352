// The manifest (/etc/posta/identities.toml): the only identity configuration.
// Read by the supervisor at start and on SIGHUP, and by `check` and `token`.
// Parsing validates everything an operator can get wrong and reports each
// error with file:line and the fix (ARCHITECTURE.md, "Manifest").
#pragma once

#include "config/diagnostic.h"

#include <string>
#include <string_view>
#include <vector>

namespace posta {

struct IdentityEntry {
    std::string slug;     // [a-z0-9][a-z0-9-]{0,62}; names <state_dir>/<slug>/
    std::string url;      // the canonical identity URL (see host_key.h)
    std::string name;     // display name
    std::string host_key; // derived from url
    int line = 0;         // where the [[identity]] table starts, for messages

    // Same identity for reload purposes: slug, url and name equal.
    bool same_as(IdentityEntry const& other) const
    {
        return slug == other.slug && url == other.url && name == other.name;
    }
};

struct Manifest {
    std::vector<IdentityEntry> identities;

    IdentityEntry const* find_slug(std::string_view slug) const;
};

// Parses manifest text; `file` is used in diagnostics only.
Parsed<Manifest> parse_manifest(std::string_view text, std::string const& file);

// Reads and parses the file at `path`; an unreadable file is one diagnostic.
Parsed<Manifest> load_manifest(std::string const& path);

bool valid_slug(std::string_view);

}
