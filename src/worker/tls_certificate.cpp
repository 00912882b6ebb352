#include "tls_certificate.h"

#include "common/fd_io.h"
#include "common/unique_fd.h"
#include "http/openssl_error.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

namespace posta {

namespace {

// A PEM private key is a few KiB at most, RSA-8192 included.
constexpr off_t max_key_file = 64 * 1024;

// The fix appended to every error: what to put where, then reload.
std::string fix_hint(std::string const& identity_dir)
{
    return "; put the certificate chain (leaf first) in " + tls_chain_path(identity_dir) + " and its key in "
        + tls_key_path(identity_dir) + " (chmod 600), then reload (SIGHUP)";
}

// The oldest error OpenSSL queued, then clears the queue.

int ex_index()
{
    // The host key a context serves, freed with the context.
    static int const index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr,
        [](void*, void* data, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(data); });
    return index;
}

std::string const* expected_name(SSL_CTX* ctx)
{
    return static_cast<std::string const*>(SSL_CTX_get_ex_data(ctx, ex_index()));
}

// SNI must name this identity: the supervisor routed the connection by it,
// so anything else is a broken invariant or a client of another identity
// that reached us some other way.
int on_server_name(SSL* ssl, int* alert, void*) noexcept
{
    std::string const* want = expected_name(SSL_get_SSL_CTX(ssl));
    char const* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (want && name && std::strlen(name) == want->size() && strncasecmp(name, want->data(), want->size()) == 0)
        return SSL_TLSEXT_ERR_OK;
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// ALPN (RFC 7301): http/1.1 when offered; a client that offers only other
// protocols is refused with no_application_protocol; one that offers none
// speaks HTTP/1.1 anyway.
int on_alpn(SSL*, unsigned char const** out, unsigned char* out_length, unsigned char const* in,
    unsigned int in_length, void*) noexcept
{
    static unsigned char const ours[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, out_length, ours, sizeof ours, in, in_length) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

// Reads the key file through one fd opened without following a symlink,
// checking the mode of what is read, and loads it into `ctx`.
Result<void> use_private_key(SSL_CTX* ctx, std::string const& path, std::string const& identity_dir)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        Error error = Error::from_errno("open", path);
        if (errno == ELOOP)
            error.detail = "is a symlink; the key must be a file of its own in tls/ (copy it there)";
        error.detail += fix_hint(identity_dir);
        return error;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0)
        return Error::from_errno("fstat", path);
    if (!S_ISREG(st.st_mode))
        return Error::message("TLS key", "is not a regular file" + fix_hint(identity_dir), path);
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return Error::message("TLS key",
            std::string("group or others have access to the private key (mode ") + mode + "); fix: chmod 600 " + path,
            path);
    }
    if (st.st_size > max_key_file)
        return Error::message("TLS key", "is too large to be a PEM private key" + fix_hint(identity_dir), path);

    std::string text(static_cast<size_t>(st.st_size), '\0');
    if (auto read = read_into(fd.get(), text, path); !read) {
        OPENSSL_cleanse(text.data(), text.size());
        return read.error();
    }
    BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
    // No passphrase: a daemon has nobody to ask (OpenSSL's default would
    // prompt on a terminal), so an encrypted key fails to load.
    pem_password_cb* no_passphrase = [](char*, int, int, void*) noexcept { return 0; };
    EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr) : nullptr;
    BIO_free(bio);
    OPENSSL_cleanse(text.data(), text.size());
    if (!key)
        return Error::message("TLS key",
            "is not an unencrypted PEM private key (" + take_openssl_error() + ")" + fix_hint(identity_dir), path);
    int used = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (used != 1)
        return Error::message("TLS key", "cannot be used (" + take_openssl_error() + ")" + fix_hint(identity_dir), path);
    return {};
}

}

std::string tls_chain_path(std::string const& identity_dir) { return identity_dir + "/tls/fullchain.pem"; }
std::string tls_key_path(std::string const& identity_dir) { return identity_dir + "/tls/privkey.pem"; }

Result<SslContext> load_tls_context(std::string const& identity_dir, std::string const& host_key)
{
    ERR_clear_error();
    SslContext ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx)
        return Error::message("SSL_CTX_new", take_openssl_error());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    // A client that closes without close_notify is an ordinary EOF (most
    // do, and HTTP/1.1 frames its messages itself), not a protocol error.
    SSL_CTX_set_options(ctx.get(),
        SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // Buffers are returned to OpenSSL between records: thousands of idle
    // keep-alive connections cost little.
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);

    std::string chain = tls_chain_path(identity_dir);
    if (::access(chain.c_str(), R_OK) < 0) {
        Error error = Error::from_errno("open", chain);
        error.detail += fix_hint(identity_dir);
        return error;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), chain.c_str()) != 1)
        return Error::message("TLS certificate", "is not a PEM certificate chain (" + take_openssl_error() + ")"
                + fix_hint(identity_dir), chain);
    X509* leaf = SSL_CTX_get0_certificate(ctx.get());
    if (X509_check_host(leaf, host_key.data(), host_key.size(), 0, nullptr) != 1)
        return Error::message("TLS certificate", "is not for " + host_key
                + " (its subjectAltName does not name it); get one that does" + fix_hint(identity_dir), chain);
    if (auto used = use_private_key(ctx.get(), tls_key_path(identity_dir), identity_dir); !used)
        return used.error();
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
        return Error::message("TLS key",
            "does not match the certificate in " + chain + " (" + take_openssl_error() + ")" + fix_hint(identity_dir),
            tls_key_path(identity_dir));

    // Resumption: tickets (on by default) are sealed with keys of this
    // context, so a reload's new context starts new sessions; the session id
    // context keeps one identity's sessions its own.
    SSL_CTX_set_session_id_context(ctx.get(), reinterpret_cast<unsigned char const*>(host_key.data()),
        static_cast<unsigned>(std::min<size_t>(host_key.size(), SSL_MAX_SID_CTX_LENGTH)));
    SSL_CTX_set_ex_data(ctx.get(), ex_index(), new std::string(host_key));
    SSL_CTX_set_tlsext_servername_callback(ctx.get(), on_server_name);
    SSL_CTX_set_alpn_select_cb(ctx.get(), on_alpn, nullptr);
    return ctx;
}

}
