// The identity's TLS server context: its certificate chain and private key
// from <state_dir>/<slug>/tls/{fullchain.pem,privkey.pem}, with the
// protocol settings every TLS connection of the identity gets. Built by the
// worker of that identity only (before its sandbox, and again on a reload),
// and by `posta-server check`, which loads the same files to say whether
// they are usable; the supervisor never loads one.
#pragma once

#include "common/result.h"

#include <memory>
#include <openssl/ssl.h>
#include <string>

namespace posta {

struct SslContextFree {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
// One reference to an SSL_CTX; every SSL made from it holds another, so a
// replaced context lives on until its last connection closes.
using SslContext = std::unique_ptr<SSL_CTX, SslContextFree>;

// The paths of an identity's certificate chain and key.
std::string tls_chain_path(std::string const& identity_dir);
std::string tls_key_path(std::string const& identity_dir);

// Builds the server context for the identity whose URL host is `host_key`:
// TLS 1.2 and 1.3 only, OpenSSL's default ciphers and groups, no
// renegotiation, ALPN http/1.1, session tickets, and a server name callback
// that refuses (unrecognized_name) a ClientHello whose SNI is not
// `host_key`. The key file must be a regular file, not a symlink, that only
// its owner can read or write (like keys.json); its bytes are wiped once
// loaded. The error is one operator line: which file, what is wrong, the fix.
Result<SslContext> load_tls_context(std::string const& identity_dir, std::string const& host_key);

}
