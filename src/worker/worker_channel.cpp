// What comes on the worker's channel from the supervisor (worker.h):
// connections, admitted under max_connections_per_address and made into
// HttpSessions (credited back with Taken), Policy after a reload, mint
// requests from the control socket, and the end of the channel, which stops
// the worker. Split from worker.cpp, the worker's life.
#include "worker.h"

#include "common/address.h"
#include "ipc/channel.h"
#include "common/log.h"
#include "common/log_throttle.h"
#include "worker/metrics_reporter.h"
#include "worker/mint.h"

#include <sodium.h>

namespace posta {

namespace {

// Connections taken off the channel per loop turn; the poll stays readable,
// so the rest follow on the next turn, after other sessions had theirs.
constexpr size_t max_connections_per_turn = 64;

}

void Worker::watch_channel(int events)
{
    if (!m_channel_poll || events == m_channel_events)
        return;
    int rc = uv_poll_start(m_channel_poll.get(), events, [](uv_poll_t* h, int status, int got) noexcept {
        if (auto* self = static_cast<Worker*>(h->data))
            self->on_channel_event(status, got);
    });
    if (rc < 0) {
        fail(std::string("uv_poll_start on the worker channel: ") + uv_strerror(rc));
        return;
    }
    m_channel_events = events;
}

void Worker::on_channel_event(int status, int events)
{
    if (status < 0) {
        // The supervisor's end is gone (it closed with our credits unread,
        // which the kernel reports as a reset): stop as on EOF.
        begin_stop("the supervisor's end of the channel failed");
        return;
    }
    if (!(events & UV_READABLE)) {
        credit_taken();
        return;
    }
    // Take what is waiting first and credit it at once, then serve it: the
    // supervisor passes more only once it has our credits.
    std::vector<ChannelMessage> connections;
    uint32_t taken = 0;
    char const* stop_reason = nullptr;
    while (taken < max_connections_per_turn) {
        auto received = receive_message(m_setup.channel.get());
        if (!received) {
            if (received.error().is(ErrorDomain::Errno, ECONNRESET)) {
                stop_reason = "the supervisor's end of the channel was reset";
                break;
            }
            fail("bad message from the supervisor: " + received.error().text());
            return;
        }
        if (!received.value())
            break; // nothing more waiting
        ChannelMessage& message = *received.value();
        if (message.type == MessageType::Connection) {
            // Refused ones are closed at once, so that a flood from one
            // address never holds a turn's worth of fds.
            ++taken;
            if (admit(message))
                connections.push_back(std::move(message));
            continue;
        }
        if (message.type == MessageType::Closed) {
            stop_reason = "the supervisor closed the channel";
            break;
        }
        if (message.type == MessageType::Policy) {
            auto policy = Policy::deserialize(message.prefix);
            if (!policy) {
                fail("bad policy from the supervisor: " + policy.error().text());
                return;
            }
            m_setup.policy = std::move(policy.value());
            apply_policy();
            log::info("policy updated: %u deliveries per minute, %zu allow and %zu deny patterns, %zu trusted proxies, "
                      "max_head_bytes %zu",
                m_setup.policy.rate_per_minute, m_setup.policy.acl.allow.size(), m_setup.policy.acl.deny.size(),
                m_setup.policy.trusted_proxies.size(), m_setup.policy.max_head_bytes);
            // A Policy message is how a reload reaches a kept worker: new
            // certificate files take effect for new connections now.
            load_tls("on reload");
            continue;
        }
        if (message.type == MessageType::Mint) {
            on_mint(message);
            continue;
        }
        fail("unexpected message type " + std::to_string(static_cast<uint32_t>(message.type))
            + " from the supervisor");
        return;
    }
    m_untaken += taken;
    if (!stop_reason)
        credit_taken();
    // Connections taken before an EOF are served too, as part of the stop.
    for (auto& connection : connections)
        take_connection(std::move(connection));
    if (stop_reason)
        begin_stop(stop_reason);
}

// The owner asked for a secret through the supervisor's control socket:
// mint it here, in the one process that may write this identity's database,
// and answer. The secret is never logged. A channel too full for the answer
// is a supervisor that stopped reading; it times the request out itself.
void Worker::on_mint(ChannelMessage const& request)
{
    auto minted = mint_secret(*m_store, request.mint, m_setup.identity.url);
    if (!minted) {
        log::warn("cannot mint an owner secret: %s", minted.error().text().c_str());
        if (auto sent = send_minted(m_setup.channel.get(), request.count, MintOutcome::Failed, minted.error().text());
            !sent)
            log::warn("%s", sent.error().text().c_str());
        return;
    }
    auto sent = send_minted(m_setup.channel.get(), request.count, MintOutcome::Minted, minted.value());
    sodium_memzero(minted.value().data(), minted.value().size());
    if (!sent)
        log::warn("cannot answer a mint request: %s", sent.error().text().c_str());
    else
        log::info("minted an owner's %s at the supervisor's request", mint_kind_name(request.mint));
}

void Worker::credit_taken()
{
    if (m_untaken > 0) {
        auto sent = send_taken(m_setup.channel.get(), m_untaken);
        if (sent) {
            m_untaken = 0;
        } else if (!sent.error().is(ErrorDomain::Errno, EAGAIN)) {
            // The supervisor is gone; its EOF follows on the channel.
            log::warn("%s", sent.error().text().c_str());
            m_untaken = 0;
        }
    }
    // A full channel: retry when it drains, or the credits would be lost
    // and the supervisor would stop passing connections.
    watch_channel(m_untaken > 0 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

// Whether `message`'s connection is to be served: it has its fd, and its
// client address is under max_connections_per_address or a trusted proxy
// (counted from here on). Otherwise it is dropped or refused here, with a throttled warning.
bool Worker::admit(ChannelMessage& message)
{
    auto const* peer = reinterpret_cast<sockaddr const*>(&message.peer);
    std::string address = format_address(peer, message.peer_len);
    if (!message.fd) {
        // The client sees its connection closed without an answer.
        m_dropped_log->log(address + ": connection dropped: this worker has all of its "
            + std::to_string(m_open_files) + " file descriptors open (" + std::to_string(m_sessions.size())
            + " connections); raise worker_open_files if this load is legitimate");
        return false;
    }
    // A trusted proxy is many clients on one address (an HTTP front's
    // upstream connections): counted, never capped.
    size_t& from_host = m_sessions_per_address[format_host(peer, message.peer_len)];
    if (from_host >= m_setup.policy.max_connections_per_address
        && !any_range_contains(m_setup.policy.trusted_proxies, peer, message.peer_len)) {
        m_refused_log->log(address + ": connection refused: " + std::to_string(from_host)
            + " connections from this address are open already (max_connections_per_address); raise it if "
              "many legitimate clients share one address");
        // A TLS client could not read an HTTP answer before its handshake.
        if (message.kind == ConnectionKind::Plain) {
            ++m_context.responses_by_class[3]; // a 429, written without a session
            HttpSession::refuse(std::move(message.fd), address,
                Rejection { 429, "too_many_connections",
                    "this address has too many connections open; close some first" });
        }
        return false;
    }
    ++from_host;
    return true;
}

void Worker::take_connection(ChannelMessage message)
{
    auto const* peer = reinterpret_cast<sockaddr const*>(&message.peer);
    std::string address = format_address(peer, message.peer_len);
    std::string host = format_host(peer, message.peer_len);
    SSL_CTX* tls = nullptr;
    if (message.kind == ConnectionKind::Tls) {
        tls = m_tls.get();
        if (!tls) {
            // Routed here by its SNI, but there is no certificate to answer
            // with: the client sees the connection closed (its fd, here).
            forget_address(host);
            m_no_tls_log->log(address + ": TLS connection closed: this identity has no usable certificate in "
                + m_setup.config.state_dir + "/" + m_setup.identity.slug + "/tls/ (see its error line)");
            return;
        }
    }
    auto session = HttpSession::create(m_context, std::move(message.fd), address, host, std::move(message.prefix), tls);
    if (!session) {
        forget_address(host);
        log::warn("%s: cannot serve connection: %s", address.c_str(), session.error().text().c_str());
        return;
    }
    m_sessions.insert(session.value());
    ++m_sessions_opened;
}

// The reloadable config keys, from the policy: sessions created from now on
// read heads up to the new bound; the timeouts are read by every session
// each time it arms its timer, so open ones follow them from their next wait.
// The ACL, rate and trusted proxies are read from the policy where used.
void Worker::apply_policy()
{
    Policy const& policy = m_setup.policy;
    m_context.max_head_bytes = policy.max_head_bytes;
    m_context.head_timeout = policy.head_timeout;
    m_context.body_timeout = policy.body_timeout;
    log::configure(policy.log_level, policy.log_format);
}

void Worker::forget_address(std::string const& host)
{
    if (auto it = m_sessions_per_address.find(host); it != m_sessions_per_address.end()) {
        if (--it->second == 0)
            m_sessions_per_address.erase(it);
    }
}

void Worker::on_session_closed(HttpSession& session)
{
    m_sessions.erase(&session);
    ++m_sessions_closed;
    if (m_reporter)
        m_reporter->note_change();
    forget_address(session.peer_host());
    maybe_finish_stop();
}

}
