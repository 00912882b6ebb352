// Manifest parsing. toml++ reads the syntax; everything after that is our
// validation, which keeps going after an error so that one `check` run lists
// every fix. toml++ reports errors by throwing toml::parse_error; the throw is
// caught here and never leaves this file.
#include "manifest.h"

#include "common/host_key.h"
#include "common/result.h"
#include "config/toml_file.h"

#include <algorithm>
#include <map>

namespace posta {

namespace {

constexpr std::string_view k_slug_rule = "1-63 characters from a-z, 0-9 and '-', starting with a letter or digit";


// Where each field of one [[identity]] table was found, for messages.
struct FieldLines {
    int slug = 0;
    int url = 0;
};

class ManifestReader : public toml_file::Reader<Manifest> {
public:
    using Reader::Reader;

    void read_root(toml::table const& root)
    {
        for (auto&& [key, node] : root) {
            if (key.str() != "identity") {
                error(toml_file::line_of(key.source()), "unknown key \"" + std::string(key.str()) + "\"; the only top-level entries are [[identity]] tables, each with slug, url and name");
                continue;
            }
            read_identities(node);
        }
    }

private:
    void read_identities(toml::node const& node)
    {
        int line = toml_file::line_of(node.source());
        if (node.is_table()) {
            error(line, "\"identity\" is a single table; write [[identity]] with double brackets, once per identity");
            return;
        }
        auto const* array = node.as_array();
        if (!array) {
            error(line, "\"identity\" is " + toml_file::type_name(node) + "; write each identity as an [[identity]] table");
            return;
        }
        for (toml::node const& element : *array) {
            if (auto const* table = element.as_table())
                read_identity(*table);
            else
                error(toml_file::line_of(element.source()), "an element of \"identity\" is " + toml_file::type_name(element) + "; each identity must be a table with slug, url and name");
        }
    }

    // Reads one string field; reports a wrong type and returns false.
    bool read_string(std::string_view key, toml::node const& node, std::string& out)
    {
        if (auto const* value = node.as_string()) {
            out = value->get();
            return true;
        }
        error(toml_file::line_of(node.source()), std::string(key) + " is " + toml_file::type_name(node) + "; it must be a string, like " + std::string(key) + " = \"...\"");
        return false;
    }

    void read_identity(toml::table const& table)
    {
        IdentityEntry entry;
        entry.line = toml_file::line_of(table.source());
        FieldLines lines;
        bool has_slug = false, has_url = false, has_name = false;
        bool slug_ok = false, url_ok = false;

        for (auto&& [key, node] : table) {
            std::string_view name = key.str();
            int line = toml_file::line_of(node.source());
            if (name == "slug") {
                has_slug = true;
                lines.slug = line;
                if (read_string(name, node, entry.slug))
                    slug_ok = check_slug(line, entry.slug);
            } else if (name == "url") {
                has_url = true;
                lines.url = line;
                std::string url;
                if (read_string(name, node, url))
                    url_ok = check_url(line, url, entry);
            } else if (name == "name") {
                has_name = true;
                if (read_string(name, node, entry.name))
                    check_name(line, entry.name);
            } else {
                error(toml_file::line_of(key.source()), "unknown key \"" + std::string(name) + "\" in [[identity]]; the allowed keys are slug, url and name");
            }
        }

        if (!has_slug)
            error(entry.line, "this [[identity]] has no slug; add slug = \"...\" (" + std::string(k_slug_rule) + ")");
        if (!has_url)
            error(entry.line, "this [[identity]] has no url; add url = \"http://HOST[:PORT]\" or \"https://HOST\"");
        if (!has_name)
            error(entry.line, "this [[identity]] has no name; add name = \"...\" with its display name");

        if (slug_ok)
            check_duplicate_slug(entry, lines);
        if (url_ok)
            check_duplicate_host(entry, lines);
        m_out.value.identities.push_back(std::move(entry));
    }

    bool check_slug(int line, std::string const& slug)
    {
        if (valid_slug(slug))
            return true;
        std::string message = "slug \"" + slug + "\" is invalid; use " + std::string(k_slug_rule);
        std::string lowered;
        for (char c : slug)
            lowered += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        if (lowered != slug && valid_slug(lowered))
            message += " (did you mean \"" + lowered + "\"?)";
        error(line, std::move(message));
        return false;
    }

    bool check_url(int line, std::string const& url, IdentityEntry& entry)
    {
        auto parsed = parse_identity_url(url);
        if (!parsed) {
            error(line, "url \"" + url + "\": " + parsed.error().detail);
            return false;
        }
        entry.url = parsed->canonical;
        entry.host_key = parsed->host_key;
        return true;
    }

    // The name is shown in identity documents and log lines: it must not be
    // empty, and a control character (a newline) would break one-line logs.
    void check_name(int line, std::string const& name)
    {
        if (name.empty()) {
            error(line, "name is empty; give the identity a display name");
            return;
        }
        for (char c : name) {
            auto u = static_cast<unsigned char>(c);
            if (u < 0x20 || u == 0x7f) {
                error(line, "name contains a control character (a tab or newline); write the display name on one line without them");
                return;
            }
        }
    }

    void check_duplicate_slug(IdentityEntry const& entry, FieldLines const& lines)
    {
        auto [it, inserted] = m_slug_lines.emplace(entry.slug, lines.slug);
        if (!inserted)
            error(lines.slug, "duplicate slug \"" + entry.slug + "\" (first at line " + std::to_string(it->second) + "); give each identity its own slug");
    }

    void check_duplicate_host(IdentityEntry const& entry, FieldLines const& lines)
    {
        auto [it, inserted] = m_hosts.emplace(entry.host_key, std::make_pair(lines.url, entry.url));
        if (inserted)
            return;
        auto const& [first_line, first_url] = it->second;
        error(lines.url, "url \"" + entry.url + "\" has the host key \"" + entry.host_key
                + "\" of url \"" + first_url + "\" (lines " + std::to_string(first_line) + " and "
                + std::to_string(lines.url) + "); requests are routed by host alone, not by "
                + "scheme or port, so give each identity its own host name");
    }

    std::map<std::string, int, std::less<>> m_slug_lines;
    std::map<std::string, std::pair<int, std::string>, std::less<>> m_hosts;
};

}

IdentityEntry const* Manifest::find_slug(std::string_view slug) const
{
    for (IdentityEntry const& entry : identities) {
        if (entry.slug == slug)
            return &entry;
    }
    return nullptr;
}

// [a-z0-9][a-z0-9-]{0,62}, checked by hand rather than with std::regex.
bool valid_slug(std::string_view slug)
{
    if (slug.empty() || slug.size() > 63)
        return false;
    for (size_t i = 0; i < slug.size(); ++i) {
        char c = slug[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || c != '-'))
            return false;
    }
    return true;
}

// Contract: never throws (toml++'s parse_error is caught here); returns every
// error found. After a TOML syntax error nothing else can be checked, so that
// one is reported alone, at the line toml++ names.
Parsed<Manifest> parse_manifest(std::string_view text, std::string const& file)
{
    return toml_file::parse_with<Manifest, ManifestReader>(text, file);
}

Parsed<Manifest> load_manifest(std::string const& path)
{
    return toml_file::load<Manifest>(path, "manifest", "--manifest", parse_manifest);
}

}
