// The sender ACL. Patterns are stored canonical (identity URLs through
// parse_identity_url, domains lowercased without a trailing dot), so admits()
// compares strings only after canonicalizing the sender the same way.
// toml++'s parse_error is caught here and never leaves this file.
#include "acl.h"

#include "common/host_key.h"
#include "common/result.h"
#include "config/toml_file.h"

#include <arpa/inet.h>
#include <algorithm>
#include <netinet/in.h>

namespace posta {

namespace {

constexpr std::string_view k_wildcard = "*.";


// The canonical form of one pattern, or why it is not one. A wildcard's
// domain is checked by the same host reduction as identity URLs (through
// parse_identity_url, so the reasons are the same), and must be a name: an IP
// address has no subdomains, so its sender URL is the pattern to write.
Result<std::string> canonical_pattern(std::string const& pattern)
{
    auto fail = [&](std::string detail) { return Error::message("ACL pattern", std::move(detail), pattern); };

    if (pattern.starts_with(k_wildcard)) {
        std::string_view domain = std::string_view(pattern).substr(k_wildcard.size());
        if (domain.empty())
            return fail("\"*.\" needs a domain after it, like \"*.example.org\"");
        if (domain.find_first_of(":/?#@[]*") != std::string_view::npos)
            return fail("a wildcard matches a domain and all its subdomains on any scheme and port; write only \"*.\" and the domain, like \"*.example.org\"");
        auto url = parse_identity_url("http://" + std::string(domain));
        if (!url)
            return fail(url.error().detail);
        in_addr addr {};
        if (inet_pton(AF_INET, url->host.c_str(), &addr) == 1)
            return fail("an IP address has no subdomains; write the sender's URL instead, like \"http://" + url->host + ":8080\"");
        return std::string(k_wildcard) + url->host;
    }
    if (pattern.find('*') != std::string::npos)
        return fail("'*' is only allowed as a leading \"*.\", like \"*.example.org\"");
    auto url = parse_identity_url(pattern);
    if (!url)
        return fail(url.error().detail + "; a pattern is an identity URL (\"https://arne.example\") or \"*.\" and a domain");
    return url->canonical;
}

bool matches(std::string const& pattern, IdentityUrl const& sender)
{
    if (!pattern.starts_with(k_wildcard))
        return pattern == sender.canonical;
    std::string_view domain = std::string_view(pattern).substr(k_wildcard.size());
    std::string_view host = sender.host;
    if (host == domain)
        return true;
    return host.size() > domain.size() && host.ends_with(domain) && host[host.size() - domain.size() - 1] == '.';
}

bool matches_any(std::vector<std::string> const& patterns, IdentityUrl const& sender)
{
    for (std::string const& pattern : patterns) {
        if (matches(pattern, sender))
            return true;
    }
    return false;
}

class AclReader : public toml_file::Reader<Acl> {
public:
    using Reader::Reader;

    void read_root(toml::table const& root)
    {
        for (auto&& [key, node] : root) {
            if (key.str() == "allow")
                read_list(key.str(), node, m_out.value.allow);
            else if (key.str() == "deny")
                read_list(key.str(), node, m_out.value.deny);
            else
                error(toml_file::line_of(key.source()), "unknown key \"" + std::string(key.str()) + "\"; the ACL keys are allow and deny");
        }
    }

private:
    void read_list(std::string_view key, toml::node const& node, std::vector<std::string>& out)
    {
        auto const* array = node.as_array();
        if (!array) {
            error(toml_file::line_of(node.source()), std::string(key) + " is " + toml_file::type_name(node) + "; it must be an array of strings, like "
                    + std::string(key) + " = [\"https://arne.example\", \"*.example.org\"]");
            return;
        }
        for (toml::node const& element : *array) {
            int line = toml_file::line_of(element.source());
            auto const* text = element.as_string();
            if (!text) {
                error(line, "an element of " + std::string(key) + " is " + toml_file::type_name(element) + "; each pattern must be a string in quotes");
                continue;
            }
            auto pattern = canonical_pattern(text->get());
            if (!pattern) {
                error(line, std::string(key) + " pattern \"" + text->get() + "\": " + pattern.error().detail);
                continue;
            }
            out.push_back(std::move(pattern).value());
        }
    }

};

}

// An unparsable sender is never admitted: it cannot match an allow pattern,
// and admitting it would let a malformed `from` slip past a deny list.
bool Acl::admits(std::string_view sender_url) const
{
    auto sender = parse_identity_url(sender_url);
    if (!sender)
        return false;
    if (matches_any(deny, *sender))
        return false;
    return allow.empty() || matches_any(allow, *sender);
}

// Contract: never throws (toml++'s parse_error is caught here); returns every
// error found.
Parsed<Acl> parse_acl(std::string_view text, std::string const& file)
{
    return toml_file::parse_with<Acl, AclReader>(text, file);
}

Parsed<Acl> load_acl(std::string const& path)
{
    return path.empty() ? Parsed<Acl> {} : toml_file::load<Acl>(path, "ACL", "--acl", parse_acl);
}

}
