// The control socket's requests, who may mint, and the answers' round trip.
#include "supervisor/control_request.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace posta;

TEST_CASE("status, token SLUG and login SLUG are the control socket's requests")
{
    auto status = parse_control_request("status");
    REQUIRE(status.ok());
    CHECK(status->kind == ControlRequest::Kind::Status);

    auto token = parse_control_request("token arne-2");
    REQUIRE(token.ok());
    CHECK(token->kind == ControlRequest::Kind::Mint);
    CHECK(token->mint == MintKind::ApiToken);
    CHECK(token->slug == "arne-2");

    auto login = parse_control_request("login arne");
    REQUIRE(login.ok());
    CHECK(login->kind == ControlRequest::Kind::Mint);
    CHECK(login->mint == MintKind::LoginLink);
    CHECK(login->slug == "arne");
}

TEST_CASE("a malformed control request is an error that says what is asked")
{
    for (auto line : { "", "stat", "status now", "token", "token ", "token Arne", "token ../marcus", "token a b",
             "token -arne", "TOKEN arne", "login", "login Arne", "logins arne" }) {
        auto parsed = parse_control_request(line);
        CHECK_MESSAGE(!parsed.ok(), line);
        if (!parsed.ok())
            CHECK_MESSAGE(!parsed.error().detail.empty(), line);
    }
    CHECK(parse_control_request("token").error().detail.find("token SLUG") != std::string::npos);
}

TEST_CASE("only root and the daemon's own user may mint")
{
    CHECK(may_mint(0, 61234));
    CHECK(may_mint(61234, 61234));
    CHECK(!may_mint(65534, 61234));
    CHECK(!may_mint(1000, 0));
    CHECK(may_mint(0, 0));
}

TEST_CASE("a secret answer reads back as its secret, and nothing else does")
{
    std::string secret = "posta_AbC-_09xyz";
    std::string answer = secret_answer(secret);
    CHECK(nlohmann::json::parse(answer)["secret"] == secret);
    auto read = read_secret_answer(answer);
    REQUIRE(read.has_value());
    CHECK(*read == secret);
    std::string link = "https://arne.example:8443/#code=AbC-_09";
    CHECK(read_secret_answer(secret_answer(link)) == link);

    for (auto other : { "", "{}", "{\"secret\":\"\"}", "{\"secret\":\"}", "{\"secret\":\"a\"b\"}",
             "{\"error\":\"no\"}", "{\"secret\":\"abc\"} ", "{\"secret\":\"ab c\"}" })
        CHECK_MESSAGE(!read_secret_answer(other).has_value(), other);
}

TEST_CASE("a secret that is not URL-safe text is answered as an error, never as written")
{
    for (auto bad : { "", "a\"}", "tok\nen", "é", "a b", "a\\b" }) {
        auto doc = nlohmann::json::parse(secret_answer(bad));
        CHECK_MESSAGE(doc.contains("error"), bad);
        CHECK(!doc.contains("secret"));
    }
}

TEST_CASE("an error answer is one line of JSON even for bytes that are not UTF-8")
{
    std::string answer = error_answer("no \"bob\"\n in \xff.toml");
    CHECK(answer.find('\n') == std::string::npos);
    auto doc = nlohmann::json::parse(answer);
    CHECK(doc["error"] == "no \"bob\"\n in \xef\xbf\xbd.toml");
}
