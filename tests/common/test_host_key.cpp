#include "common/host_key.h"

#include <doctest/doctest.h>

using namespace posta;

namespace {

std::string key(std::string_view header)
{
    auto k = host_key_from_header(header);
    return k ? *k : std::string("<invalid>");
}

// The canonical URL, or "error: <detail>".
std::string canonical(std::string_view url)
{
    auto parsed = parse_identity_url(url);
    if (!parsed)
        return "error: " + parsed.error().detail;
    return parsed->canonical;
}

bool refused_with(std::string_view url, std::string_view words)
{
    auto parsed = parse_identity_url(url);
    if (parsed) {
        MESSAGE("accepted: ", url);
        return false;
    }
    bool found = parsed.error().detail.find(words) != std::string::npos;
    if (!found)
        MESSAGE("detail: ", parsed.error().detail);
    return found;
}

}

TEST_CASE("a host header is lowercased")
{
    CHECK(key("Arne.LOCAL") == "arne.local");
}

TEST_CASE("a host header loses one trailing dot")
{
    CHECK(key("arne.local.") == "arne.local");
    CHECK(key("arne.local.:8080") == "arne.local");
    CHECK(key("arne.local..") == "<invalid>");
    CHECK(key(".") == "<invalid>");
}

TEST_CASE("a host header loses its port")
{
    CHECK(key("arne.local:8080") == "arne.local");
    CHECK(key("arne.local:0") == "arne.local");
    CHECK(key("arne.local:65535") == "arne.local");
    CHECK(key("arne.local:08080") == "arne.local");
    CHECK(key("127.0.0.1:8080") == "127.0.0.1");
    CHECK(key("localhost") == "localhost");
}

TEST_CASE("an empty port in a host header counts as no port, as RFC 9110 allows")
{
    CHECK(key("arne.local:") == "arne.local");
    CHECK(key("[::1]:") == "[::1]");
}

TEST_CASE("a host header with a bad port is invalid")
{
    CHECK(key("arne.local:65536") == "<invalid>");
    CHECK(key("arne.local:123456") == "<invalid>");
    CHECK(key("arne.local:80a") == "<invalid>");
    CHECK(key("arne.local:-1") == "<invalid>");
    CHECK(key("arne.local:+80") == "<invalid>");
    CHECK(key("arne.local:8080:80") == "<invalid>");
}

TEST_CASE("an IPv6 literal keeps its brackets and loses its port")
{
    CHECK(key("[::1]:8080") == "[::1]");
    CHECK(key("[::1]") == "[::1]");
    CHECK(key("[2001:DB8::A]") == "[2001:db8::a]");
}

TEST_CASE("IPv6 literals that spell the same address share a host key")
{
    CHECK(key("[0:0:0:0:0:0:0:1]") == "[::1]");
    CHECK(key("[2001:db8:0:0:0:0:0:1]:443") == "[2001:db8::1]");
}

TEST_CASE("invalid IPv6 literals are refused")
{
    for (auto text : { "::1", "[::1", "::1]", "[]", "[::1]8080", "[::g]", "[1.2.3.4]", "[fe80::1%eth0]",
             "[fe80::1%25eth0]", "[::1]:99999", "[[::1]]" }) {
        CAPTURE(text);
        CHECK(key(text) == "<invalid>");
    }
}

TEST_CASE("host headers with forbidden characters or empty parts are invalid")
{
    for (auto text : { "", ":8080", "arne .local", "arne@arne.local", "user:pw@arne.local", "arne_x.local",
             "arne.local/x", "a..b", ".arne.local", "-arne.local", "arne-.local", "arne.local\r\n",
             "arne\tlocal", "ärne.local", "xn--rne-pla.local\xc3\xa4", "*.local", "arne%2elocal" }) {
        CAPTURE(text);
        CHECK(key(text) == "<invalid>");
    }
}

TEST_CASE("spaces around a host header value are not part of it")
{
    CHECK(key(" arne.local ") == "arne.local");
    CHECK(key("\tarne.local:8080\t") == "arne.local");
}

TEST_CASE("punycode names and inner hyphens are valid hosts")
{
    CHECK(key("xn--rne-pla.example") == "xn--rne-pla.example");
    CHECK(key("my-host.example") == "my-host.example");
}

TEST_CASE("labels and names over the DNS limits are invalid")
{
    std::string label63(63, 'a');
    CHECK(key(label63 + ".example") == label63 + ".example");
    CHECK(key(std::string(64, 'a') + ".example") == "<invalid>");
    std::string name;
    while (name.size() < 250)
        name += "abcdefghi.";
    name += "abcd";
    CHECK(key(name) == "<invalid>");
}

TEST_CASE("a name ending in a numeric label must be a valid IPv4 address")
{
    CHECK(key("192.0.2.1") == "192.0.2.1");
    CHECK(key("192.0.2.256") == "<invalid>");
    CHECK(key("1.2.3") == "<invalid>");
    CHECK(key("192.0.2.01") == "<invalid>");
    CHECK(key("example.123") == "<invalid>");
    CHECK(key("123.example") == "123.example");
}

TEST_CASE("an identity URL is reduced to scheme, host and a non-default port")
{
    CHECK(canonical("http://arne.local:8080") == "http://arne.local:8080");
    CHECK(canonical("http://arne.local:8080/") == "http://arne.local:8080");
    CHECK(canonical("HTTPS://Arne.Example./") == "https://arne.example");
    CHECK(canonical("http://arne.local:80") == "http://arne.local");
    CHECK(canonical("https://arne.example:443") == "https://arne.example");
    CHECK(canonical("https://arne.example:80") == "https://arne.example:80");
    CHECK(canonical("http://arne.local:443") == "http://arne.local:443");
    CHECK(canonical("http://[::1]:8080") == "http://[::1]:8080");
    CHECK(canonical("http://[0::1]") == "http://[::1]");
    CHECK(canonical("http://127.0.0.1:08080") == "http://127.0.0.1:8080");
}

TEST_CASE("the parts of a parsed identity URL are filled in")
{
    auto url = parse_identity_url("https://Arne.Example.:8443/");
    REQUIRE(url.ok());
    CHECK(url->scheme == "https");
    CHECK(url->host == "arne.example");
    CHECK(url->host_key == "arne.example");
    CHECK(url->port == 8443);
    CHECK(url->canonical == "https://arne.example:8443");

    auto plain = parse_identity_url("http://arne.local");
    REQUIRE(plain.ok());
    CHECK(plain->port == 80);
    auto secure = parse_identity_url("https://arne.example");
    REQUIRE(secure.ok());
    CHECK(secure->port == 443);
}

TEST_CASE("the host key of an identity URL equals the key of a Host header for it")
{
    auto url = parse_identity_url("http://Arne.Local.:8080");
    REQUIRE(url.ok());
    CHECK(key("ARNE.local:8080") == url->host_key);
    CHECK(key("arne.local") == url->host_key);
}

TEST_CASE("identity URLs with a wrong or missing scheme are refused with the fix")
{
    CHECK(refused_with("arne.local:8080", "no scheme; write it as http://"));
    CHECK(refused_with("://arne.local", "no scheme"));
    CHECK(refused_with("ftp://arne.local", "\"ftp\" is not supported; use http or https"));
    CHECK(refused_with("http:/arne.local", "no scheme"));
}

TEST_CASE("identity URLs with userinfo, path, query or fragment are refused with the fix")
{
    CHECK(refused_with("http://arne@arne.local", "userinfo"));
    CHECK(refused_with("http://a:b@arne.local", "userinfo"));
    CHECK(refused_with("http://arne.local/inbox", "the path \"/inbox\" is not allowed"));
    CHECK(refused_with("http://arne.local//", "the path \"//\" is not allowed"));
    CHECK(refused_with("http://arne.local?x=1", "a query ('?') is not allowed"));
    CHECK(refused_with("http://arne.local/?", "a query"));
    CHECK(refused_with("http://arne.local#top", "a fragment ('#') is not allowed"));
    CHECK(refused_with("http://arne.local/#", "a fragment"));
}

TEST_CASE("identity URLs with a bad host or port are refused with the reason")
{
    CHECK(refused_with("http://", "no host"));
    CHECK(refused_with("http:///", "no host"));
    CHECK(refused_with("http://:8080", "the host is empty"));
    CHECK(refused_with("http://arne.local:", "the port after ':' is empty"));
    CHECK(refused_with("http://arne.local:0", "not a number from 1 to 65535"));
    CHECK(refused_with("http://arne.local:65536", "not a number from 1 to 65535"));
    CHECK(refused_with("http://arne.local:http", "not a number from 1 to 65535"));
    CHECK(refused_with("http://ärne.local", "punycode"));
    CHECK(refused_with("http://arne .local", "a space"));
    CHECK(refused_with("http://arne_x.local", "'_' is not allowed in a host name"));
    CHECK(refused_with("http://a..b", "empty label"));
    CHECK(refused_with("http://.", "only a dot"));
    CHECK(refused_with("http://::1", "in brackets"));
    CHECK(refused_with("http://[::1", "no closing ']'"));
    CHECK(refused_with("http://[::x]", "not a valid IPv6 address"));
    CHECK(refused_with("http://[::1]x", "after ']'"));
    CHECK(refused_with("http://300.1.1.1", "not a valid IPv4 address"));
    CHECK(refused_with("http://-arne.local", "starts or ends with '-'"));
    CHECK(refused_with("http://arne.local\n", "control character 0x0a"));
}

TEST_CASE("a refused identity URL names the URL as context")
{
    auto url = parse_identity_url("ftp://arne.local");
    REQUIRE_FALSE(url.ok());
    CHECK(url.error().context == "ftp://arne.local");
    CHECK(url.error().text().find("ftp://arne.local") != std::string::npos);
}

// check_head takes a Host that equals the identity's key byte for byte as
// that key without reducing it: sound only while every key reduces to itself.
TEST_CASE("a host key reduces to itself")
{
    for (char const* url : { "http://Arne.LOCAL.", "https://arne.local:8443", "http://127.0.0.1:8080",
             "http://[0:0:0:0:0:0:0:1]:8080", "http://[::FFFF:127.0.0.1]", "https://xn--mnchen-3ya.local",
             "http://localhost", "http://a-b.c-d.local:80" }) {
        CAPTURE(url);
        auto parsed = parse_identity_url(url);
        REQUIRE(parsed);
        CHECK(key(parsed->host_key) == parsed->host_key);
    }
}
