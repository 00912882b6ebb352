// keys.json: created once with strict modes, reused afterwards, and refused
// (with the path and the fix) when it is exposed, garbled or inconsistent.
#include "support/test_support.h"
#include "protocol/base64url.h"
#include "worker/identity_dir.h"
#include "worker/keys.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <sodium.h>
#include <span>
#include <sys/stat.h>

using namespace posta;
using namespace posta::test;

namespace {

struct SodiumInit {
    SodiumInit() { REQUIRE(sodium_init() >= 0); }
};

std::string keys_text(std::string const& pk, std::string const& sk)
{
    return R"({"version": 1, "algorithm": "ed25519", "public_key": ")" + pk + R"(", "secret_key": ")" + sk
        + R"(", "created_at": "2026-11-27T09:00:00Z"})";
}

}

TEST_CASE("prepare_identity_dir creates the state folder and the identity folder with mode 0700")
{
    TempDir tmp;
    std::string state = tmp.path() + "/state";
    auto dir = prepare_identity_dir(state, "arne");
    REQUIRE(dir.ok());
    CHECK(dir.value() == state + "/arne");
    CHECK(file_mode(state) == 0700);
    CHECK(file_mode(state + "/arne") == 0700);
    // A second start uses what is there.
    CHECK(prepare_identity_dir(state + "/", "arne").ok());
}

TEST_CASE("a missing keys.json is created 0600 with a fresh keypair in the documented format")
{
    SodiumInit sodium;
    TempDir tmp;
    auto dir = prepare_identity_dir(tmp.path() + "/state", "arne");
    REQUIRE(dir.ok());
    auto keys = Keys::load_or_create(dir.value());
    REQUIRE_MESSAGE(keys.ok(), keys.error().text());

    std::string path = dir.value() + "/keys.json";
    CHECK(file_mode(path) == 0600);
    CHECK(file_mode(dir.value() + "/keys.json.tmp") == -1);
    auto doc = nlohmann::json::parse(read_file(path));
    CHECK(doc["version"] == 1);
    CHECK(doc["algorithm"] == "ed25519");
    CHECK(doc["public_key"] == keys->public_key_b64());
    std::string pk = doc["public_key"];
    std::string sk = doc["secret_key"];
    CHECK(pk.size() == 43); // 32 bytes, unpadded
    CHECK(sk.size() == 86); // 64 bytes, unpadded
    CHECK(pk.find_first_of("+/=") == std::string::npos);
    std::string created = doc["created_at"];
    CHECK(created.size() == 20);
    CHECK(created.back() == 'Z');

    // The key signs, and the signature verifies against the public key.
    auto signature = keys->sign(std::string_view("hello"));
    CHECK(crypto_sign_verify_detached(signature.data(), reinterpret_cast<unsigned char const*>("hello"), 5,
              keys->public_key().data())
        == 0);
}

TEST_CASE("an existing keys.json is reused, not replaced")
{
    SodiumInit sodium;
    TempDir tmp;
    auto dir = prepare_identity_dir(tmp.path(), "arne");
    REQUIRE(dir.ok());
    auto first = Keys::load_or_create(dir.value());
    REQUIRE(first.ok());
    std::string before = read_file(dir.value() + "/keys.json");
    auto second = Keys::load_or_create(dir.value());
    REQUIRE_MESSAGE(second.ok(), second.error().text());
    CHECK(second->public_key_b64() == first->public_key_b64());
    CHECK(second->created_at() == first->created_at());
    CHECK(read_file(dir.value() + "/keys.json") == before);
}

TEST_CASE("a keys.json readable by group or others is refused with its path and the chmod fix")
{
    SodiumInit sodium;
    TempDir tmp;
    auto dir = prepare_identity_dir(tmp.path(), "arne");
    REQUIRE(dir.ok());
    REQUIRE(Keys::load_or_create(dir.value()).ok());
    std::string path = dir.value() + "/keys.json";
    for (int mode : { 0644, 0640, 0604, 0610 }) {
        REQUIRE(::chmod(path.c_str(), static_cast<mode_t>(mode)) == 0);
        auto keys = Keys::load_or_create(dir.value());
        REQUIRE(!keys.ok());
        std::string text = keys.error().text();
        CHECK(text.find(path) != std::string::npos);
        CHECK(text.find("chmod 600 " + path) != std::string::npos);
    }
}

TEST_CASE("a keys.json whose halves do not match is refused")
{
    SodiumInit sodium;
    TempDir tmp;
    unsigned char pk1[32], sk1[64], pk2[32], sk2[64];
    crypto_sign_keypair(pk1, sk1);
    crypto_sign_keypair(pk2, sk2);
    std::string path = tmp.path() + "/keys.json";

    SUBCASE("public key of another pair")
    {
        write_file(path, keys_text(base64url_encode(pk2), base64url_encode(sk1)), 0600);
    }
    SUBCASE("secret key whose embedded public half was replaced")
    {
        // seed of pair 1, public half of pair 2, claimed public key of pair 2
        unsigned char spliced[64];
        std::copy(sk1, sk1 + 32, spliced);
        std::copy(pk2, pk2 + 32, spliced + 32);
        write_file(path, keys_text(base64url_encode(pk2), base64url_encode(spliced)), 0600);
    }
    auto keys = Keys::load_or_create(tmp.path());
    REQUIRE(!keys.ok());
    CHECK(keys.error().text().find("does not belong") != std::string::npos);
    CHECK(keys.error().text().find(path) != std::string::npos);
}

TEST_CASE("a garbled keys.json is refused with its path")
{
    SodiumInit sodium;
    TempDir tmp;
    unsigned char pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    std::string good_pk = base64url_encode(pk);
    std::string good_sk = base64url_encode(sk);
    std::string path = tmp.path() + "/keys.json";
    std::string text;

    SUBCASE("not JSON") { text = "{\"version\": 1, "; }
    SUBCASE("not an object") { text = "[1, 2]"; }
    SUBCASE("empty file") { text = ""; }
    SUBCASE("wrong version") { text = R"({"version": 2, "algorithm": "ed25519", "public_key": ")" + good_pk + R"(", "secret_key": ")" + good_sk + "\"}"; }
    SUBCASE("wrong algorithm") { text = R"({"version": 1, "algorithm": "rsa", "public_key": ")" + good_pk + R"(", "secret_key": ")" + good_sk + "\"}"; }
    SUBCASE("short public key") { text = keys_text(good_pk.substr(0, 40), good_sk); }
    SUBCASE("short secret key") { text = keys_text(good_pk, base64url_encode(std::span(sk, 32))); }
    SUBCASE("padded base64") { text = keys_text(good_pk + "=", good_sk); }
    SUBCASE("standard base64 alphabet") { text = keys_text(std::string(42, 'A') + "+", good_sk); }
    SUBCASE("missing secret key") { text = R"({"version": 1, "algorithm": "ed25519", "public_key": ")" + good_pk + "\"}"; }

    write_file(path, text, 0600);
    auto keys = Keys::load_or_create(tmp.path());
    REQUIRE(!keys.ok());
    CHECK(keys.error().text().find(path) != std::string::npos);
}

TEST_CASE("a keys.json written by hand in the documented format is accepted")
{
    SodiumInit sodium;
    TempDir tmp;
    unsigned char pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    write_file(tmp.path() + "/keys.json", keys_text(base64url_encode(pk), base64url_encode(sk)), 0600);
    auto keys = Keys::load_or_create(tmp.path());
    REQUIRE_MESSAGE(keys.ok(), keys.error().text());
    CHECK(keys->public_key_b64() == base64url_encode(pk));
}
