// keys.json is written once, atomically (temp file created 0600, fsync,
// rename without replacing, fsync of the folder), and afterwards only read.
// Copies of the secret key (file text, parsed JSON) are wiped as soon as the
// key is in its array.
#include "keys.h"

#include "protocol/base64url.h"
#include "common/log.h"
#include "common/fd_io.h"
#include "worker/identity_dir.h"
#include "common/unique_fd.h"
#include "protocol/timestamp.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

namespace posta {

namespace {

// keys.json is about 250 bytes; anything much larger is not ours.
constexpr off_t max_keys_file = 64 * 1024;

void wipe(std::string& s)
{
    if (!s.empty())
        sodium_memzero(s.data(), s.size());
    s.clear();
}

// The fix for a keys.json that cannot be used as it is.
std::string restore_hint()
{
    return "; restore keys.json from a backup (moving it away makes a new keypair, and peers then see a new key)";
}

Error keys_error(std::string const& path, std::string detail)
{
    return Error::message("keys", std::move(detail), path);
}

Result<void> fsync_dir(std::string const& dir)
{
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd)
        return Error::from_errno("open", dir);
    if (::fsync(fd.get()) < 0)
        return Error::from_errno("fsync", dir);
    return {};
}

}

Keys::Keys(Keys&& other) noexcept
    : m_public(other.m_public)
    , m_secret(other.m_secret)
    , m_public_b64(std::move(other.m_public_b64))
    , m_created_at(std::move(other.m_created_at))
{
    sodium_memzero(other.m_secret.data(), other.m_secret.size());
}

Keys& Keys::operator=(Keys&& other) noexcept
{
    if (this != &other) {
        m_public = other.m_public;
        m_secret = other.m_secret;
        m_public_b64 = std::move(other.m_public_b64);
        m_created_at = std::move(other.m_created_at);
        sodium_memzero(other.m_secret.data(), other.m_secret.size());
    }
    return *this;
}

Keys::~Keys() { sodium_memzero(m_secret.data(), m_secret.size()); }

Keys::Signature Keys::sign(std::span<unsigned char const> bytes) const
{
    Signature out {};
    crypto_sign_detached(out.data(), nullptr, bytes.data(), bytes.size(), m_secret.data());
    return out;
}

Keys::Signature Keys::sign(std::string_view bytes) const
{
    return sign(std::span(reinterpret_cast<unsigned char const*>(bytes.data()), bytes.size()));
}

Result<Keys> Keys::load_or_create(std::string const& dir)
{
    std::string path = dir + "/keys.json";
    // Never through a symlink: one could lead this worker, before its
    // sandbox holds, to another identity's secret key.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd)
        return load(fd.get(), path);
    if (errno == ELOOP)
        return keys_error(path, "is a symlink; keys.json must be a file of its own in the identity folder "
                                "(replace the link with the file)");
    if (errno != ENOENT) {
        Error error = Error::from_errno("open", path);
        if (error.is(ErrorDomain::Errno, EACCES))
            error.detail += "; keys.json must be owned by the user posta-server runs as";
        return error;
    }
    return create(dir, path);
}

Result<Keys> Keys::load(int fd, std::string const& path)
{
    // fstat of the open file, not stat of the name: the mode we check is the
    // mode of the bytes we read.
    struct stat st {};
    if (::fstat(fd, &st) < 0)
        return Error::from_errno("fstat", path);
    if (!S_ISREG(st.st_mode))
        return keys_error(path, "is not a regular file; move it away");
    if (auto owned = check_owner(st, path); !owned)
        return owned.error();
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return keys_error(path,
            std::string("group or others have access to the secret key (mode ") + mode + "); fix: chmod 600 " + path);
    }
    if (st.st_size > max_keys_file)
        return keys_error(path, "is too large to be a keys.json" + restore_hint());

    std::string text(static_cast<size_t>(st.st_size), '\0');
    if (auto read = read_into(fd, text, path); !read) {
        wipe(text);
        return read.error();
    }

    auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    wipe(text);
    // Wipes the secret key's text inside the parsed document on every path.
    struct DocWiper {
        nlohmann::json& doc;
        ~DocWiper()
        {
            if (doc.is_object()) {
                auto it = doc.find("secret_key");
                if (it != doc.end() && it->is_string())
                    wipe(it->get_ref<std::string&>());
            }
        }
    } wiper { doc };

    if (doc.is_discarded() || !doc.is_object())
        return keys_error(path, "does not parse as a JSON object" + restore_hint());
    auto field = [&](char const* name) -> nlohmann::json const* {
        auto it = doc.find(name);
        return it == doc.end() ? nullptr : &*it;
    };
    auto const* version = field("version");
    if (!version || !version->is_number_integer() || version->get<int64_t>() != 1)
        return keys_error(path, "has no \"version\": 1; this posta-server reads version 1 only" + restore_hint());
    auto const* algorithm = field("algorithm");
    if (!algorithm || !algorithm->is_string() || algorithm->get_ref<std::string const&>() != "ed25519")
        return keys_error(path, "has no \"algorithm\": \"ed25519\"" + restore_hint());
    auto const* public_key = field("public_key");
    auto const* secret_key = field("secret_key");
    if (!public_key || !public_key->is_string() || !secret_key || !secret_key->is_string())
        return keys_error(path, "lacks public_key or secret_key" + restore_hint());

    Keys keys;
    if (!base64url_decode_exact(public_key->get_ref<std::string const&>(), keys.m_public))
        return keys_error(path, "public_key is not 32 bytes of unpadded base64url" + restore_hint());
    if (!base64url_decode_exact(secret_key->get_ref<std::string const&>(), keys.m_secret))
        return keys_error(path, "secret_key is not 64 bytes of unpadded base64url" + restore_hint());

    // libsodium's secret key is seed || public key. The halves match when the
    // public key embedded in the secret key is public_key, and when the seed
    // really derives that public key (a spliced file passes the first test).
    PublicKey embedded {};
    crypto_sign_ed25519_sk_to_pk(embedded.data(), keys.m_secret.data());
    PublicKey derived {};
    std::array<unsigned char, crypto_sign_SEEDBYTES> seed {};
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> rebuilt {};
    crypto_sign_ed25519_sk_to_seed(seed.data(), keys.m_secret.data());
    crypto_sign_seed_keypair(derived.data(), rebuilt.data(), seed.data());
    sodium_memzero(seed.data(), seed.size());
    sodium_memzero(rebuilt.data(), rebuilt.size());
    if (sodium_memcmp(embedded.data(), keys.m_public.data(), embedded.size()) != 0
        || sodium_memcmp(derived.data(), keys.m_public.data(), derived.size()) != 0)
        return keys_error(path, "public_key does not belong to secret_key" + restore_hint());

    keys.m_public_b64 = public_key->get<std::string>();
    if (auto const* created = field("created_at"); created && created->is_string())
        keys.m_created_at = created->get<std::string>();
    return keys;
}

Result<Keys> Keys::create(std::string const& dir, std::string const& path)
{
    Keys keys;
    crypto_sign_keypair(keys.m_public.data(), keys.m_secret.data());
    keys.m_public_b64 = base64url_encode(keys.m_public);
    keys.m_created_at = format_rfc3339(std::chrono::system_clock::now());

    // Built by hand rather than through a JSON value, so the one copy of the
    // encoded secret is ours to wipe.
    std::string secret_b64 = base64url_encode(keys.m_secret);
    std::string text = "{\"version\": 1, \"algorithm\": \"ed25519\",\n \"public_key\": \"" + keys.m_public_b64
        + "\",\n \"secret_key\": \"" + secret_b64 + "\",\n \"created_at\": \"" + keys.m_created_at + "\"}\n";
    wipe(secret_b64);

    // Only this identity's worker ever writes here, so a leftover temp file
    // is from a run that died mid-write: remove it and retry once.
    std::string temp = dir + "/keys.json.tmp";
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
    UniqueFd fd(::open(temp.c_str(), flags, 0600));
    if (!fd && errno == EEXIST && ::unlink(temp.c_str()) == 0)
        fd.reset(::open(temp.c_str(), flags, 0600));
    if (!fd) {
        wipe(text);
        return Error::from_errno("open", temp);
    }
    auto written = write_all(fd.get(), text, temp);
    wipe(text);
    if (!written) {
        ::unlink(temp.c_str());
        return written.error();
    }
    if (::fsync(fd.get()) < 0) {
        Error error = Error::from_errno("fsync", temp);
        ::unlink(temp.c_str());
        return error;
    }
    if (::close(fd.release()) < 0) {
        Error error = Error::from_errno("close", temp);
        ::unlink(temp.c_str());
        return error;
    }

    // Never replace a keys.json: if one appeared meanwhile, it wins.
    if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) < 0) {
        if (errno == EEXIST) {
            ::unlink(temp.c_str());
            UniqueFd existing(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
            if (!existing)
                return Error::from_errno("open", path);
            return load(existing.get(), path);
        }
        if (errno != EINVAL && errno != ENOSYS) {
            Error error = Error::from_errno("rename", temp + " to " + path);
            ::unlink(temp.c_str());
            return error;
        }
        // A filesystem without RENAME_NOREPLACE: we checked just before that
        // keys.json does not exist, and nobody else writes this folder.
        if (::rename(temp.c_str(), path.c_str()) < 0) {
            Error error = Error::from_errno("rename", temp + " to " + path);
            ::unlink(temp.c_str());
            return error;
        }
    }
    if (auto synced = fsync_dir(dir); !synced)
        return synced.error();

    log::info("created %s with a new ed25519 keypair (public key %s)", path.c_str(), keys.m_public_b64.c_str());
    return keys;
}

}
