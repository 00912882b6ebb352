// The control socket's little language (control_server.h), pure: the
// request lines a client may send, who may ask for what, and the one-line
// JSON answers. Used by the supervisor to answer and by the unit tests.
//
//   status          -> the daemon's state (Supervisor::status_json)
//   token SLUG      -> {"secret":"posta_..."}: a new owner API token, minted
//                      by SLUG's worker; only for root or the daemon's user
//   login SLUG      -> {"secret":"<identity URL>/#code=..."}: a one-time
//                      sign-in link, the same way
//   anything wrong  -> {"error":"one line for the operator"}
#pragma once

#include "ipc/channel.h"
#include "common/result.h"

#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace posta {

struct ControlRequest {
    enum class Kind { Status, Mint };
    Kind kind = Kind::Status;
    MintKind mint = MintKind::ApiToken; // Mint
    std::string slug;                   // Mint: a valid slug (not yet known to be served)
};

// Reads one request line (without its newline). An error says, in words
// fit for the client, what is wrong with it.
Result<ControlRequest> parse_control_request(std::string_view line);

// Whether a client whose SO_PEERCRED uid is `peer` may ask for owner
// secrets of a daemon running as `daemon_euid`: root, or the daemon's own
// user, who could read every identity's files anyway. Nobody else, whatever
// the socket's mode lets connect.
bool may_mint(uid_t peer, uid_t daemon_euid);

// The answers. A secret is printable ASCII without quotes, backslashes or
// spaces (a token, a URL) and is written as it is; the caller wipes the
// answer once sent.
std::string secret_answer(std::string_view secret);
std::string error_answer(std::string_view why);

// The client's side: the secret of a secret_answer (a view into `answer`),
// or nullopt for any other answer. Read in place, so that no parser keeps a
// copy of the secret.
std::optional<std::string_view> read_secret_answer(std::string_view answer);

}
