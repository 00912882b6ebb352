// The supervisor <-> worker channel: one private SOCK_SEQPACKET socketpair per
// worker. The supervisor sends accepted connections (fd by SCM_RIGHTS, the
// client address and any head bytes it had to consume); the worker sends its
// state (ready) and its metrics (ipc/worker_report.h), and answers the
// supervisor's requests for an owner secret (mint). Both ends of a message
// share a name: send_X / on_X.
#pragma once

#include "common/result.h"
#include "common/unique_fd.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>
#include <utility>

namespace posta {

// Every message type of the channel, in both directions.
enum class MessageType : uint32_t {
    Connection = 1, // supervisor -> worker: an accepted client connection
    Ready = 2,      // worker -> supervisor: keys and database open, serving
    Taken = 3,      // worker -> supervisor: it took `count` connections off the channel
    Policy = 4,     // supervisor -> worker: the ACL and rate limit, after a reload
                    // (the worker also rereads its TLS certificate then)
    TlsStatus = 5,  // worker -> supervisor: whether its TLS certificate is usable
    Start = 6,      // supervisor -> worker, first: identity, config, policy (WorkerStart)
    Fork = 7,       // supervisor -> template: fork a worker for slug `prefix` on channel `fd`
    Forked = 8,     // template -> supervisor: the new worker's pid is `count` (0: failed, why in `prefix`)
    Mint = 9,       // supervisor -> worker: make owner secret `mint` (request id `count`)
    Minted = 10,    // worker -> supervisor: the answer to request `count`: the secret, or why not
    Metrics = 11,   // worker -> supervisor: its WorkerReport::serialize() in `prefix`
    Closed = 100,   // not on the wire: the other end closed the channel
};

// How the client speaks on a passed connection: plain HTTP, or TLS (the
// socket is untouched, or its prefix is the start of a ClientHello, and the
// worker terminates TLS itself).
enum class ConnectionKind : uint32_t {
    Plain = 0,
    Tls = 1,
};

// The owner secrets a worker mints on request (worker/mint.h), for the
// control socket's `token` and `login`.
enum class MintKind : uint32_t {
    ApiToken = 1,  // an owner API token
    LoginLink = 2, // a one-time sign-in code, as the link <identity URL>/#code=<code>
};

// What a secret of `kind` is called in operator messages ("API token"), and
// whether `value` is one of the kinds.
char const* mint_kind_name(MintKind kind);
bool is_mint_kind(uint32_t value);

// Whether a Minted message carries the secret or the reason there is none.
enum class MintOutcome : uint32_t {
    Minted = 0,
    Failed = 1,
};

// The largest head prefix a connection message may carry.
inline constexpr size_t max_channel_prefix = 64 * 1024;

struct ChannelMessage {
    MessageType type {};
    // Connection: the client socket, close-on-exec; Fork: the new worker's
    // end of its channel. Connection: invalid when the
    // receiver had no file descriptor left for it (RLIMIT_NOFILE), in which
    // case the kernel closed the connection.
    UniqueFd fd;
    sockaddr_storage peer {};
    socklen_t peer_len = 0;
    std::string prefix; // Connection: request bytes already read off the socket;
                        // Policy: the serialized Policy; TlsStatus: the
                        // problem, empty when the certificate is in use;
                        // Start: the serialized WorkerStart; Fork: the slug;
                        // Forked: why the fork failed; Minted: the
                        // secret, or why it failed; Metrics: the
                        // serialized WorkerReport
    uint32_t count = 0; // Taken: how many connections; Forked: the pid;
                        // Mint, Minted: the request id
    ConnectionKind kind = ConnectionKind::Plain; // Connection
    MintKind mint = MintKind::ApiToken;          // Mint
    MintOutcome outcome = MintOutcome::Minted;   // Minted
};

// A non-blocking, close-on-exec SOCK_SEQPACKET pair: first for the
// supervisor, second for the worker.
Result<std::pair<UniqueFd, UniqueFd>> make_channel();

// Sends a connection. Fails with code EAGAIN when the channel is full; the
// caller still owns `conn_fd` in every case.
Result<void> send_connection(int channel, int conn_fd, sockaddr const* peer, socklen_t peer_len,
    std::string_view prefix, ConnectionKind kind);

Result<void> send_ready(int channel);

// Sends the daemon-wide policy (Policy::serialize()) to a worker.
Result<void> send_policy(int channel, std::string_view serialized);

// Tells the supervisor (for `status`) what is wrong with the worker's TLS
// certificate, or "" once it has one in use.
Result<void> send_tls_status(int channel, std::string_view problem);

// Sends a worker its WorkerStart::serialize(), the first message it reads.
Result<void> send_start(int channel, std::string_view serialized);

// Sends the worker's WorkerReport::serialize() to the supervisor. Fails
// with EAGAIN when the channel is full (the next report carries the news).
Result<void> send_metrics(int channel, std::string_view serialized);

// Credits connections back to the supervisor, which lets at most
// max_pending connections wait in a worker's channel.
Result<void> send_taken(int channel, uint32_t count);

// The worker template's requests (worker_template.h): fork a worker for
// `slug` whose channel end is `worker_channel`, and the answer.
Result<void> send_fork(int channel, int worker_channel, std::string_view slug);
Result<void> send_forked(int channel, pid_t pid, std::string_view why = {});

// The supervisor asks a worker for an owner secret of `kind`; the worker
// answers request `id` with the secret (outcome Minted) or the reason it has
// none (Failed). The receiver of a Minted message should wipe its prefix
// once used: it is a credential.
Result<void> send_mint(int channel, uint32_t id, MintKind kind);
Result<void> send_minted(int channel, uint32_t id, MintOutcome outcome, std::string_view secret_or_why);

// Receives one message. nullopt: nothing is waiting (EAGAIN). A message of
// type Closed: the peer closed its end. A malformed message is an error (a
// broken invariant between our own processes).
Result<std::optional<ChannelMessage>> receive_message(int channel);

}
