// Keys: the identity's ed25519 keypair, loaded from (or, the first time,
// written to) <state_dir>/<slug>/keys.json by that identity's worker alone.
// It owns the secret key bytes and wipes them when it dies; it signs outbound
// deliveries and provides the public key of the identity document.
#pragma once

#include "common/result.h"

#include <array>
#include <sodium.h>
#include <span>
#include <string>
#include <string_view>

namespace posta {

class Keys {
public:
    using PublicKey = std::array<unsigned char, crypto_sign_PUBLICKEYBYTES>;
    using Signature = std::array<unsigned char, crypto_sign_BYTES>;

    // Loads `dir`/keys.json, or creates it with a fresh keypair when it does
    // not exist (logged). Refuses, with an error that names the path and the
    // fix, a file that group or others may access, one that does not parse,
    // has another version or algorithm, keys of the wrong length, or a
    // public key that is not the secret key's. Needs sodium_init() first.
    static Result<Keys> load_or_create(std::string const& dir);

    Keys(Keys&&) noexcept;
    Keys& operator=(Keys&&) noexcept;
    Keys(Keys const&) = delete;
    Keys& operator=(Keys const&) = delete;
    ~Keys();

    // The detached ed25519 signature of exactly `bytes`.
    Signature sign(std::span<unsigned char const> bytes) const;
    Signature sign(std::string_view bytes) const;

    PublicKey const& public_key() const { return m_public; }
    // base64url without padding, as in keys.json and the identity document.
    std::string const& public_key_b64() const { return m_public_b64; }
    std::string const& created_at() const { return m_created_at; }

private:
    Keys() = default;
    static Result<Keys> load(int fd, std::string const& path);
    static Result<Keys> create(std::string const& dir, std::string const& path);

    PublicKey m_public {};
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> m_secret {}; // wiped on destruction and move
    std::string m_public_b64;
    std::string m_created_at;
};

}
