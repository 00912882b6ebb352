// What the three operator files (manifest, config, ACL) share: reading the
// file, running toml++ without letting its exceptions out, and describing
// nodes and lines for diagnostics. Used by manifest.cpp, config.cpp, acl.cpp.
#pragma once

#include "config/diagnostic.h"
#include "common/result.h"

#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>

namespace posta::toml_file {

int line_of(toml::source_region const&);

// "a string", "an integer", ...: for "must be a string, not an integer".
std::string type_name(toml::node const&);

// Reads a whole file. Blocking; meant for start, reload and `check`.
Result<std::string> read(std::string const& path);

// Parses TOML text. On a syntax error, adds it (alone: nothing else can be
// checked after one) to `errors` and returns nullopt. Never throws.
std::optional<toml::table> parse(std::string_view text, std::string const& file, Diagnostics& errors);

// toml++ keeps a table's keys sorted by name; operators read in file order.
void sort_by_line(Diagnostics&);

// The one diagnostic for a file that cannot be read: `what` names the file's
// role ("manifest"), `flag` the option that chose it ("--manifest").
Diagnostic unreadable(std::string const& path, Error const&, char const* what, char const* flag);

// What each file's reader holds: the file's name for diagnostics and the
// result it fills. A reader derives from it and adds read_root(table).
template<typename T> class Reader {
public:
    Reader(std::string const& file, Parsed<T>& out)
        : m_file(file)
        , m_out(out)
    {
    }

protected:
    void error(int line, std::string message) { m_out.errors.push_back(Diagnostic { m_file, line, std::move(message) }); }
    void error(toml::node const& node, std::string message) { error(line_of(node.source()), std::move(message)); }

    std::string const& m_file;
    Parsed<T>& m_out;
};

// Parses TOML text into a T: Reader, made from the file's name and the
// result, checks the root table and records what is wrong; diagnostics come
// in file order. The one shape of parse_manifest, parse_config, parse_acl.
template<typename T, typename FileReader>
Parsed<T> parse_with(std::string_view text, std::string const& file)
{
    Parsed<T> out;
    auto root = parse(text, file, out.errors);
    if (!root)
        return out;
    FileReader(file, out).read_root(*root);
    sort_by_line(out.errors);
    return out;
}

// Reads `path` and parses it with `parse_text`; an unreadable file is one
// diagnostic. Files that may be left out (config, ACL) give their defaults
// for an empty path before calling this.
template<typename T, typename ParseText>
Parsed<T> load(std::string const& path, char const* what, char const* flag, ParseText parse_text)
{
    auto text = read(path);
    if (!text) {
        Parsed<T> out;
        out.errors.push_back(unreadable(path, text.error(), what, flag));
        return out;
    }
    return parse_text(text.value(), path);
}

}
