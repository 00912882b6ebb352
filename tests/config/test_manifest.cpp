#include "config/manifest.h"
#include "diagnostics_check.h"

#include <cstdio>
#include <doctest/doctest.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace posta;

namespace {

Parsed<Manifest> parse(std::string_view text)
{
    return parse_manifest(text, "identities.toml");
}

bool has_error(Parsed<Manifest> const& parsed, int line, std::initializer_list<std::string_view> words)
{
    return has_error_in(parsed.errors, "identities.toml", line, words);
}

// A file in a fresh temporary directory, removed at the end of the test.
class TempFile {
public:
    explicit TempFile(std::string_view text)
    {
        char dir[] = "/tmp/posta-test-XXXXXX";
        REQUIRE(mkdtemp(dir) != nullptr);
        m_dir = dir;
        m_path = m_dir + "/identities.toml";
        std::ofstream(m_path) << text;
    }
    ~TempFile()
    {
        std::remove(m_path.c_str());
        rmdir(m_dir.c_str());
    }
    std::string const& path() const { return m_path; }

private:
    std::string m_dir;
    std::string m_path;
};

constexpr char const* k_two = R"(# two identities
[[identity]]
slug = "arne"
url  = "http://Arne.Local:8080/"
name = "Arne"

[[identity]]
slug = "marcus"
url  = "https://marcus.example:443"
name = "Marcus"
)";

}

TEST_CASE("an empty manifest is valid and has no identities")
{
    for (auto text : { "", "\n", "# only a comment\n", "identity = []\n" }) {
        CAPTURE(text);
        auto parsed = parse(text);
        CHECK(parsed.ok());
        CHECK(parsed.value.identities.empty());
    }
}

TEST_CASE("a valid manifest gives each identity with its canonical URL, host key and line")
{
    auto parsed = parse(k_two);
    REQUIRE(parsed.ok());
    REQUIRE(parsed.value.identities.size() == 2);
    IdentityEntry const& arne = parsed.value.identities[0];
    CHECK(arne.slug == "arne");
    CHECK(arne.url == "http://arne.local:8080");
    CHECK(arne.host_key == "arne.local");
    CHECK(arne.name == "Arne");
    CHECK(arne.line == 2);
    IdentityEntry const& marcus = parsed.value.identities[1];
    CHECK(marcus.url == "https://marcus.example");
    CHECK(marcus.host_key == "marcus.example");
    CHECK(marcus.line == 7);
}

TEST_CASE("identities written as inline tables are accepted")
{
    auto parsed = parse(R"(identity = [
  { slug = "arne", url = "http://arne.local", name = "Arne" },
  { slug = "bo", url = "http://bo.local", name = "Bo" },
])");
    REQUIRE(parsed.ok());
    REQUIRE(parsed.value.identities.size() == 2);
    CHECK(parsed.value.identities[1].line == 3);
}

TEST_CASE("find_slug finds an identity by its slug and nothing else")
{
    auto parsed = parse(k_two);
    REQUIRE(parsed.ok());
    REQUIRE(parsed.value.find_slug("marcus") != nullptr);
    CHECK(parsed.value.find_slug("marcus")->name == "Marcus");
    CHECK(parsed.value.find_slug("Marcus") == nullptr);
    CHECK(parsed.value.find_slug("") == nullptr);
}

TEST_CASE("same_as compares slug, url and name")
{
    auto parsed = parse(k_two);
    REQUIRE(parsed.ok());
    IdentityEntry a = parsed.value.identities[0];
    IdentityEntry b = a;
    b.line = 99;
    CHECK(a.same_as(b));
    b.name = "Arne B.";
    CHECK_FALSE(a.same_as(b));
}

TEST_CASE("valid_slug follows [a-z0-9][a-z0-9-]{0,62}")
{
    CHECK(valid_slug("a"));
    CHECK(valid_slug("0"));
    CHECK(valid_slug("arne-2"));
    CHECK(valid_slug("arne-"));
    CHECK(valid_slug(std::string(63, 'a')));
    CHECK_FALSE(valid_slug(""));
    CHECK_FALSE(valid_slug(std::string(64, 'a')));
    CHECK_FALSE(valid_slug("-arne"));
    CHECK_FALSE(valid_slug("Arne"));
    CHECK_FALSE(valid_slug("ar_ne"));
    CHECK_FALSE(valid_slug("ar.ne"));
    CHECK_FALSE(valid_slug("../x"));
    CHECK_FALSE(valid_slug("ärne"));
}

TEST_CASE("a TOML syntax error is reported alone at its line")
{
    auto parsed = parse("[[identity]]\nslug = \"arne\"\nurl = \n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 3, { "TOML syntax error", "correct this line" }));
}

TEST_CASE("a key written twice is a TOML syntax error at the second one")
{
    auto parsed = parse("[[identity]]\nslug = \"a\"\nslug = \"b\"\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 3, { "TOML syntax error" }));
}

TEST_CASE("an unknown top-level key is named with what is allowed")
{
    auto parsed = parse("slug = \"arne\"\n\n[server]\nport = 1\n");
    CHECK(parsed.errors.size() == 2);
    CHECK(has_error(parsed, 1, { "unknown key \"slug\"", "[[identity]]" }));
    CHECK(has_error(parsed, 3, { "unknown key \"server\"" }));
}

TEST_CASE("an unknown key in an identity is named with the allowed keys")
{
    auto parsed = parse("[[identity]]\nslug = \"arne\"\nurl = \"http://arne.local\"\nname = \"Arne\"\nkeys = \"/tmp/k\"\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 5, { "unknown key \"keys\"", "slug, url and name" }));
}

TEST_CASE("identity written as a single table tells to use double brackets")
{
    auto parsed = parse("\n[identity]\nslug = \"arne\"\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 2, { "[[identity]]", "double brackets" }));
}

TEST_CASE("identity of another type, or with non-table elements, is an error")
{
    auto parsed = parse("identity = \"arne\"\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 1, { "\"identity\" is a string" }));

    auto mixed = parse("identity = [\n  1,\n  \"x\",\n]\n");
    CHECK(mixed.errors.size() == 2);
    CHECK(has_error(mixed, 2, { "is an integer" }));
    CHECK(has_error(mixed, 3, { "is a string" }));
}

TEST_CASE("each missing field is reported at the line of its [[identity]]")
{
    auto parsed = parse("\n\n[[identity]]\n");
    CHECK(parsed.errors.size() == 3);
    CHECK(has_error(parsed, 3, { "no slug", "add slug = " }));
    CHECK(has_error(parsed, 3, { "no url", "add url = " }));
    CHECK(has_error(parsed, 3, { "no name", "add name = " }));
}

TEST_CASE("a field of the wrong type is reported at its line with the fix")
{
    auto parsed = parse("[[identity]]\nslug = 7\nurl = [\"http://a.local\"]\nname = true\n");
    CHECK(parsed.errors.size() == 3);
    CHECK(has_error(parsed, 2, { "slug is an integer", "must be a string" }));
    CHECK(has_error(parsed, 3, { "url is an array", "must be a string" }));
    CHECK(has_error(parsed, 4, { "name is a boolean", "must be a string" }));
}

TEST_CASE("a bad slug is reported with the rule and a lowercase suggestion")
{
    auto parsed = parse("[[identity]]\nslug = \"Arne\"\nurl = \"http://arne.local\"\nname = \"Arne\"\n"
                        "[[identity]]\nslug = \"../etc\"\nurl = \"http://b.local\"\nname = \"B\"\n");
    CHECK(parsed.errors.size() == 2);
    CHECK(has_error(parsed, 2, { "slug \"Arne\" is invalid", "a-z, 0-9 and '-'", "did you mean \"arne\"" }));
    CHECK(has_error(parsed, 6, { "slug \"../etc\" is invalid" }));
}

TEST_CASE("a bad url is reported with the reason from the URL parser")
{
    auto parsed = parse("[[identity]]\nslug = \"arne\"\nurl = \"http://arne.local/inbox\"\nname = \"Arne\"\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 3, { "url \"http://arne.local/inbox\"", "path \"/inbox\" is not allowed" }));
}

TEST_CASE("an empty name or one with a newline is refused")
{
    auto parsed = parse("[[identity]]\nslug = \"a\"\nurl = \"http://a.local\"\nname = \"\"\n"
                        "[[identity]]\nslug = \"b\"\nurl = \"http://b.local\"\nname = \"B\\nX\"\n");
    CHECK(parsed.errors.size() == 2);
    CHECK(has_error(parsed, 4, { "name is empty" }));
    CHECK(has_error(parsed, 8, { "control character" }));
}

TEST_CASE("a duplicate slug names the line of the first")
{
    auto parsed = parse(R"([[identity]]
slug = "arne"
url = "http://arne.local"
name = "Arne"

[[identity]]
slug = "arne"
url = "http://arne2.local"
name = "Arne 2"
)");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 7, { "duplicate slug \"arne\"", "first at line 2", "its own slug" }));
}

TEST_CASE("a duplicate host key names both lines, whatever the scheme, port, case or trailing dot")
{
    auto parsed = parse(R"([[identity]]
slug = "arne"
url = "http://arne.local:8080"
name = "Arne"

[[identity]]
slug = "arne-tls"
url = "https://ARNE.local.:8443"
name = "Arne"
)");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(has_error(parsed, 8, { "host key \"arne.local\"", "lines 3 and 8", "own host name" }));
}

TEST_CASE("every error of a manifest is collected, not just the first")
{
    auto parsed = parse(R"(colour = "blue"

[[identity]]
slug = "Bad Slug"
url = "ftp://x.local"
name = "X"
extra = 1

[[identity]]
url = "http://ok.local"

[[identity]]
slug = "dup"
url = "http://a.local"
name = "A"

[[identity]]
slug = "dup"
url = "http://a.local:9"
name = 3
)");
    CHECK(parsed.errors.size() == 9);
    CHECK(has_error(parsed, 1, { "unknown key \"colour\"" }));
    CHECK(has_error(parsed, 4, { "slug \"Bad Slug\" is invalid" }));
    CHECK(has_error(parsed, 5, { "\"ftp\" is not supported" }));
    CHECK(has_error(parsed, 7, { "unknown key \"extra\"" }));
    CHECK(has_error(parsed, 9, { "no slug" }));
    CHECK(has_error(parsed, 9, { "no name" }));
    CHECK(has_error(parsed, 18, { "duplicate slug \"dup\"", "first at line 13" }));
    CHECK(has_error(parsed, 19, { "lines 14 and 19" }));
    CHECK(has_error(parsed, 20, { "name is an integer" }));
}

TEST_CASE("diagnostics print as file:line: message")
{
    auto parsed = parse("[[identity]]\nslug = \"arne\"\nurl = \"http://arne.local\"\nname = \"Arne\"\nx = 1\n");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(parsed.errors[0].text().starts_with("identities.toml:5: unknown key \"x\""));
}

TEST_CASE("load_manifest reads and parses a file, naming it in diagnostics")
{
    TempFile good(k_two);
    auto parsed = load_manifest(good.path());
    CHECK(parsed.ok());
    CHECK(parsed.value.identities.size() == 2);

    TempFile bad("[[identity]]\nslug = \"arne\"\n");
    auto broken = load_manifest(bad.path());
    REQUIRE(broken.errors.size() == 2);
    CHECK(broken.errors[0].file == bad.path());
    CHECK(broken.errors[0].line == 1);
}

TEST_CASE("an unreadable manifest is one diagnostic at line 0 with the system's reason")
{
    auto parsed = load_manifest("/nonexistent/posta/identities.toml");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(parsed.errors[0].file == "/nonexistent/posta/identities.toml");
    CHECK(parsed.errors[0].line == 0);
    CHECK(parsed.errors[0].message.find("No such file or directory") != std::string::npos);
    CHECK(parsed.errors[0].message.find("--manifest") != std::string::npos);
    CHECK(parsed.errors[0].text().starts_with("/nonexistent/posta/identities.toml: "));
}

TEST_CASE("a directory given as the manifest is one diagnostic")
{
    auto parsed = load_manifest("/tmp");
    REQUIRE(parsed.errors.size() == 1);
    CHECK(parsed.errors[0].line == 0);
    CHECK(parsed.errors[0].message.find("Is a directory") != std::string::npos);
}

TEST_CASE("errors are reported in the order of their lines")
{
    auto parsed = parse("[[identity]]\nzz = 1\nslug = \"Bad\"\nname = 2\naa = 3\nurl = \"x\"\n");
    REQUIRE(parsed.errors.size() == 5);
    for (size_t i = 0; i < parsed.errors.size(); ++i)
        CHECK(parsed.errors[i].line == static_cast<int>(i) + 2);
}
