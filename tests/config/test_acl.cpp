#include "config/acl.h"
#include "diagnostics_check.h"

#include <cstdio>
#include <doctest/doctest.h>
#include <fstream>
#include <unistd.h>

using namespace posta;

namespace {

Parsed<Acl> parse(std::string_view text)
{
    return parse_acl(text, "acl.toml");
}

bool has_error(Parsed<Acl> const& parsed, int line, std::initializer_list<std::string_view> words)
{
    return has_error_in(parsed.errors, "acl.toml", line, words);
}

Acl acl(std::string_view text)
{
    auto parsed = parse(text);
    for (Diagnostic const& d : parsed.errors)
        MESSAGE(d.text());
    REQUIRE(parsed.ok());
    return parsed.value;
}

// Checks, for each sender URL, whether `a` admits it; a failure names the URL.
void check_admits(Acl const& a, std::initializer_list<std::pair<std::string_view, bool>> cases)
{
    for (auto const& [text, admitted] : cases) {
        std::string_view url = text; // a plain variable: doctest's CAPTURE cannot take a binding
        CAPTURE(url);
        CHECK(a.admits(url) == admitted);
    }
}

}

TEST_CASE("an empty ACL admits every well-formed sender")
{
    Acl empty = acl("");
    CHECK(empty.allow.empty());
    CHECK(empty.deny.empty());
    CHECK(empty.admits("http://arne.local:8080"));
    CHECK(empty.admits("https://anyone.example"));
    CHECK(acl("allow = []\ndeny = []\n").admits("https://anyone.example"));
}

TEST_CASE("load_acl with no path gives the empty ACL")
{
    auto parsed = load_acl("");
    REQUIRE(parsed.ok());
    CHECK(parsed.value.admits("https://anyone.example"));
}

TEST_CASE("a malformed sender URL is never admitted")
{
    Acl empty = acl("");
    check_admits(empty, {
        { "", false },
        { "arne.local", false },
        { "http://arne.local/inbox", false },
        { "ftp://arne.local", false },
    });
}

TEST_CASE("patterns are stored canonical")
{
    Acl a = acl("allow = [\"HTTP://Arne.Local:80/\", \"*.Example.ORG.\", \"https://[0::1]:443\"]\n");
    REQUIRE(a.allow.size() == 3);
    CHECK(a.allow[0] == "http://arne.local");
    CHECK(a.allow[1] == "*.example.org");
    CHECK(a.allow[2] == "https://[::1]");
}

TEST_CASE("a URL pattern matches the sender URL canonically and nothing else")
{
    Acl a = acl("allow = [\"http://arne.local:8080\"]\n");
    check_admits(a, {
        { "http://arne.local:8080", true },
        { "HTTP://ARNE.local.:8080/", true },
        { "http://arne.local", false },
        { "https://arne.local:8080", false },
        { "http://x.arne.local:8080", false },
    });
}

TEST_CASE("a wildcard matches its domain and every subdomain on any scheme and port")
{
    Acl a = acl("allow = [\"*.example.org\"]\n");
    check_admits(a, {
        { "https://example.org", true },
        { "http://example.org:8080", true },
        { "https://arne.example.org", true },
        { "http://a.b.example.org:1", true },
        { "https://badexample.org", false },
        { "https://example.org.evil.net", false },
        { "https://org", false },
        { "http://[::1]", false },
    });
}

TEST_CASE("a non-empty allow list admits only what it matches")
{
    Acl a = acl("allow = [\"https://arne.example\", \"*.friends.net\"]\n");
    check_admits(a, {
        { "https://arne.example", true },
        { "https://bo.friends.net", true },
        { "https://stranger.example", false },
    });
}

TEST_CASE("deny wins over allow")
{
    Acl a = acl("allow = [\"*.example.org\"]\ndeny = [\"https://spam.example.org\", \"*.bad.example.org\"]\n");
    check_admits(a, {
        { "https://arne.example.org", true },
        { "https://spam.example.org", false },
        { "http://spam.example.org", true },
        { "https://bad.example.org", false },
        { "https://x.bad.example.org:8443", false },
    });
}

TEST_CASE("deny alone admits everything else")
{
    Acl a = acl("deny = [\"*.spam.net\"]\n");
    CHECK(a.admits("https://arne.example"));
    CHECK_FALSE(a.admits("https://spam.net"));
}

TEST_CASE("unknown keys and wrong types in the ACL are errors at their line")
{
    auto parsed = parse("allow = \"https://a.example\"\nblock = []\ndeny = [\n  \"https://b.example\",\n  42,\n]\n");
    CHECK(parsed.errors.size() == 3);
    CHECK(has_error(parsed, 1, { "allow is a string", "array of strings" }));
    CHECK(has_error(parsed, 2, { "unknown key \"block\"", "allow and deny" }));
    CHECK(has_error(parsed, 5, { "an element of deny is an integer" }));
}

TEST_CASE("bad patterns are reported at their line with the reason")
{
    auto parsed = parse(R"(allow = [
  "arne.example",
  "https://arne.example/inbox",
  "*.",
  "*.exa mple.org",
  "*.example.org:8080",
  "*.192.0.2.1",
  "https://*.example.org",
  "*",
  "*.a..b",
]
)");
    CHECK(parsed.errors.size() == 9);
    CHECK(has_error(parsed, 2, { "allow pattern \"arne.example\"", "no scheme", "\"*.\" and a domain" }));
    CHECK(has_error(parsed, 3, { "path \"/inbox\"" }));
    CHECK(has_error(parsed, 4, { "needs a domain" }));
    CHECK(has_error(parsed, 5, { "a space" }));
    CHECK(has_error(parsed, 6, { "only \"*.\" and the domain" }));
    CHECK(has_error(parsed, 7, { "IP address has no subdomains" }));
    CHECK(has_error(parsed, 8, { "only allowed as a leading" }));
    CHECK(has_error(parsed, 9, { "only allowed as a leading" }));
    CHECK(has_error(parsed, 10, { "empty label" }));
}

TEST_CASE("a TOML syntax error in the ACL is reported at its line")
{
    auto parsed = parse("deny = [\"https://a.example\"\n\nallow = 1\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(parsed.errors[0].line > 0);
    CHECK(parsed.errors[0].message.find("TOML syntax error") != std::string::npos);
}

TEST_CASE("load_acl reads a file and reports an unreadable one at line 0")
{
    char path[] = "/tmp/posta-acl-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    std::ofstream(path) << "deny = [\"*.spam.net\"]\n";
    auto parsed = load_acl(path);
    std::remove(path);
    REQUIRE(parsed.ok());
    CHECK_FALSE(parsed.value.admits("https://spam.net"));

    auto missing = load_acl("/nonexistent/acl.toml");
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].line == 0);
    CHECK(missing.errors[0].message.find("No such file or directory") != std::string::npos);
}
