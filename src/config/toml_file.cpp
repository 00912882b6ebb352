#include "toml_file.h"

#include "common/fd_io.h"
#include "common/unique_fd.h"

#include <algorithm>
#include <fcntl.h>

namespace posta::toml_file {

int line_of(toml::source_region const& source) { return static_cast<int>(source.begin.line); }

std::string type_name(toml::node const& node)
{
    switch (node.type()) {
    case toml::node_type::table:
        return "a table";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a float";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::date:
        return "a date";
    case toml::node_type::time:
        return "a time";
    case toml::node_type::date_time:
        return "a date-time";
    case toml::node_type::none:
        break;
    }
    return "nothing";
}

Result<std::string> read(std::string const& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        return Error::from_errno("open", path);
    return read_all(fd.get(), path);
}

std::optional<toml::table> parse(std::string_view text, std::string const& file, Diagnostics& errors)
{
    try {
        return toml::parse(text, std::string_view(file));
    } catch (toml::parse_error const& e) {
        errors.push_back(Diagnostic { file, line_of(e.source()),
            "TOML syntax error: " + std::string(e.description()) + "; correct this line (see toml.io for the syntax)" });
    } catch (std::exception const& e) {
        errors.push_back(Diagnostic { file, 0, std::string("cannot parse: ") + e.what() });
    }
    return std::nullopt;
}

void sort_by_line(Diagnostics& errors)
{
    std::stable_sort(errors.begin(), errors.end(), [](Diagnostic const& a, Diagnostic const& b) { return a.line < b.line; });
}

Diagnostic unreadable(std::string const& path, Error const& error, char const* what, char const* flag)
{
    return Diagnostic { path, 0,
        std::string("cannot read the ") + what + " (" + error.op + ": " + error.detail + "); check the " + flag
            + " path and the file's permissions" };
}

}
