// The supervisor's intake (supervisor.h): how a connection gets from
// accept4() to its worker. Accept in batches, peek, take a trusted front's
// PROXY header, parse the Host of the head (on TLS: the SNI of the
// ClientHello) and pass the untouched socket to the worker routed to; or
// answer 400/404/408/431 (on TLS, an alert or a close) here. A head that
// does not arrive in one piece waits as a Pending connection under one
// deadline. Split from supervisor.cpp, which runs the workers, signals and
// reloads.
#include "supervisor.h"

#include "common/callback_guard.h"
#include "common/host_key.h"
#include "common/log.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <sys/socket.h>

namespace posta {

namespace {

// How many connections one wake-up of a listener accepts before letting the
// loop serve others (slow heads, worker channels, signals).
constexpr int accept_batch = 64;
// After EMFILE/ENFILE, how long to stop accepting before trying again.
constexpr uint64_t accept_pause_ms = 100;

}

void Supervisor::resume_accepting()
{
    for (auto& poll : m_listener_polls) {
        uv_poll_start(poll.get(), UV_READABLE, [](uv_poll_t* handle, int, int) noexcept {
            if (auto* self = static_cast<Supervisor*>(handle->data)) {
                int fd = -1;
                uv_fileno(reinterpret_cast<uv_handle_t*>(handle), &fd);
                guard_callback("accept", [&] { self->on_listener_readable(fd); });
            }
        });
    }
}

void Supervisor::pause_accepting(uint64_t ms)
{
    for (auto& poll : m_listener_polls)
        uv_poll_stop(poll.get());
    uv_timer_start(m_accept_pause_timer.get(), [](uv_timer_t* timer) noexcept {
        if (auto* self = static_cast<Supervisor*>(timer->data); self && !self->m_stopping)
            guard_callback("accept pause", [&] { self->resume_accepting(); });
    }, ms, 0);
}

void Supervisor::on_listener_readable(int listen_fd)
{
    auto listener = std::find_if(m_listeners.begin(), m_listeners.end(),
        [&](Listener const& l) { return l.fd() == listen_fd; });
    if (listener == m_listeners.end())
        return;
    ConnectionKind kind = listener->kind();
    for (int i = 0; i < accept_batch; ++i) {
        SocketAddress peer;
        peer.length = sizeof peer.storage;
        int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length,
            SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log::warn("accept4: %s; pausing accepts for %llu ms (raise the open files limit)",
                    std::strerror(errno), static_cast<unsigned long long>(accept_pause_ms));
                pause_accepting(accept_pause_ms);
                return;
            }
            // ECONNABORTED and friends concern one connection only.
            continue;
        }
        ++m_connections_accepted;
        on_accept(UniqueFd(fd), peer, kind);
    }
}

namespace {

// What a new connection sent so far, peeked into `buffer`; nullopt when it
// closed or failed before sending anything (nothing to answer).
std::optional<std::string_view> peek(int fd, std::vector<char>& buffer)
{
    ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_PEEK);
    if (n == 0)
        return std::nullopt;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return std::nullopt;
    return std::string_view(buffer.data(), n > 0 ? static_cast<size_t>(n) : 0);
}

// Whether a recv() that gave `n` only found nothing to read yet (rather
// than the end of the connection or an error).
bool nothing_yet(ssize_t n)
{
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

// Takes exactly `length` bytes off `fd`, which has them (they were peeked).
bool consume(int fd, size_t length)
{
    char sink[max_proxy_header_bytes];
    while (length > 0) {
        size_t part = std::min(length, sizeof sink);
        if (::recv(fd, sink, part, 0) != static_cast<ssize_t>(part))
            return false; // the kernel gave less than it showed: a broken socket
        length -= part;
    }
    return true;
}

// A PROXY header refused: 400 on plain HTTP; on TLS nothing is said (as to
// anything that is not a ClientHello), the connection just closes.
void refuse_proxy_header(UniqueFd fd, ConnectionKind kind)
{
    if (kind == ConnectionKind::Plain)
        reply_and_close(std::move(fd), Reply::BadRequest);
}

}

void Supervisor::on_accept(UniqueFd fd, SocketAddress const& peer, ConnectionKind kind)
{
    Intake& intake = *m_intake;
    auto peeked = peek(fd.get(), intake.peek_buffer);
    if (!peeked)
        return;
    uint64_t deadline_ms = uv_now(&m_loop) + intake.head_timeout_ms;

    // A trusted front may say first whose connection this is. Only the
    // header leaves the socket: what follows (a head, a ClientHello) stays
    // as the client sent it.
    if (any_range_contains(intake.trusted_proxies, peer.get(), peer.length)) {
        ProxyHeader header = read_proxy_header(*peeked);
        switch (header.state) {
        case ProxyHeader::State::Absent:
            break;
        case ProxyHeader::State::NeedMore:
            wait_for(std::move(fd), peer, kind, Pending::Awaiting::ProxyHeader, *peeked, deadline_ms);
            return;
        case ProxyHeader::State::Malformed:
            log::warn("%s: bad PROXY header from a trusted proxy: %s", format_address(peer.get(), peer.length).c_str(),
                header.error);
            refuse_proxy_header(std::move(fd), kind);
            return;
        case ProxyHeader::State::Complete:
            if (!consume(fd.get(), header.length))
                return;
            take_head(std::move(fd), header.source.value_or(peer), kind, peeked->substr(header.length), deadline_ms);
            return;
        }
    } else if (has_proxy_signature(*peeked)) {
        // A stranger must not choose the address it is limited and logged by.
        log::debug("%s: PROXY header from an address not in trusted_proxies; refused",
            format_address(peer.get(), peer.length).c_str());
        refuse_proxy_header(std::move(fd), kind);
        return;
    }
    take_head(std::move(fd), peer, kind, *peeked, deadline_ms);
}

void Supervisor::take_head(UniqueFd fd, SocketAddress const& peer, ConnectionKind kind, std::string_view peeked,
    uint64_t deadline_ms)
{
    // Fast path: with TCP_DEFER_ACCEPT the head (or ClientHello) is usually
    // all there. Parse the peeked bytes, route, pass the untouched socket:
    // the worker reads the request itself. The one allocation is the host
    // key's string, and only for a key longer than std::string's inline
    // capacity (15 bytes).
    Intake& intake = *m_intake;
    if (kind == ConnectionKind::Tls) {
        ClientHelloPeek hello = read_client_hello(peeked, intake.max_head_bytes);
        if (hello.state != ClientHelloPeek::State::NeedMore) {
            settle_client_hello(std::move(fd), peer, hello, {});
            return;
        }
    } else {
        intake.fast_head.reset();
        auto state = intake.fast_head.feed(peeked);
        if (state != HeadPeek::State::NeedMore) {
            settle_head(std::move(fd), peer, intake.fast_head, state, {});
            return;
        }
    }
    wait_for(std::move(fd), peer, kind, Pending::Awaiting::Head, peeked, deadline_ms);
}

void Supervisor::wait_for(UniqueFd fd, SocketAddress const& peer, ConnectionKind kind, Pending::Awaiting awaiting,
    std::string_view peeked, uint64_t deadline_ms)
{
    // Slow path: take what came off the socket (so it stops being readable)
    // and wait for the rest without spinning. Of a PROXY header that is
    // still incomplete, every byte so far is the header's.
    auto pending = std::make_unique<Pending>(m_intake->max_head_bytes);
    pending->awaiting = awaiting;
    pending->peer = peer;
    pending->kind = kind;
    pending->owner = this;
    pending->buffer.resize(peeked.size());
    if (!peeked.empty()) {
        ssize_t got = ::recv(fd.get(), pending->buffer.data(), pending->buffer.size(), 0);
        if (got != static_cast<ssize_t>(peeked.size()))
            return; // the kernel gave less than it showed: a broken socket
        if (awaiting == Pending::Awaiting::Head && kind == ConnectionKind::Plain)
            pending->head.feed(pending->buffer);
    }
    auto poll = make_poll(&m_loop, fd.get(), pending.get());
    if (!poll) {
        log::warn("%s: %s", format_address(peer.get(), peer.length).c_str(), poll.error().text().c_str());
        return;
    }
    pending->fd = std::move(fd);
    pending->poll = std::move(poll.value());
    pending->deadline_ms = deadline_ms;
    uv_poll_start(pending->poll.get(), UV_READABLE, [](uv_poll_t* handle, int, int) noexcept {
        if (auto* p = static_cast<Pending*>(handle->data))
            guard_callback("head read", [&] { p->owner->on_pending_readable(*p); });
    });
    bool was_empty = m_pending.empty();
    m_pending.push_back(std::move(pending));
    m_pending.back()->position = std::prev(m_pending.end());
    if (was_empty)
        arm_head_timer();
}

void Supervisor::on_pending_proxy_header(Pending& pending)
{
    // Peek, so that no byte past the header leaves the socket; take off
    // what belongs to it, so that the socket stops being readable.
    std::vector<char>& scratch = m_intake->peek_buffer;
    size_t have = pending.buffer.size();
    size_t room = std::min(max_proxy_header_bytes - have, scratch.size());
    ssize_t n = ::recv(pending.fd.get(), scratch.data(), room, MSG_PEEK);
    if (n <= 0) {
        if (!nothing_yet(n))
            drop_pending(pending); // the front went away
        return;
    }
    pending.buffer.append(scratch.data(), static_cast<size_t>(n));
    ProxyHeader header = read_proxy_header(pending.buffer);
    switch (header.state) {
    case ProxyHeader::State::NeedMore:
        if (!consume(pending.fd.get(), static_cast<size_t>(n)))
            drop_pending(pending);
        return;
    case ProxyHeader::State::Absent:
        // A head that began like a header: what was taken off the socket
        // is its beginning, the rest is read as any slow head is.
        pending.buffer.resize(have);
        pending.awaiting = Pending::Awaiting::Head;
        on_pending_bytes(pending, 0);
        return;
    case ProxyHeader::State::Malformed: {
        log::warn("%s: bad PROXY header from a trusted proxy: %s",
            format_address(pending.peer.get(), pending.peer.length).c_str(), header.error);
        UniqueFd fd = std::move(pending.fd);
        pending.poll.close();
        refuse_proxy_header(std::move(fd), pending.kind);
        drop_pending(pending);
        return;
    }
    case ProxyHeader::State::Complete:
        if (!consume(pending.fd.get(), header.length - have)) {
            drop_pending(pending);
            return;
        }
        // The same connection now waits for its head, under the same
        // deadline; the poll stays, and fires again for bytes already there.
        if (header.source)
            pending.peer = *header.source;
        pending.buffer.clear();
        pending.awaiting = Pending::Awaiting::Head;
        return;
    }
}

void Supervisor::on_pending_readable(Pending& pending)
{
    if (pending.awaiting == Pending::Awaiting::ProxyHeader) {
        on_pending_proxy_header(pending);
        return;
    }
    // Read into the shared peek buffer and keep only what arrived: a client
    // trickling one byte at a time costs one small copy per byte. The bound
    // is the one this connection was accepted under (HeadPeek says TooLarge
    // once it has seen that many bytes); the read is also bounded by the
    // buffer of the current intake, which a reload may have made smaller.
    std::vector<char>& scratch = m_intake->peek_buffer;
    size_t have = pending.buffer.size();
    size_t room = std::min(pending.head.max_head_bytes() - have, scratch.size());
    ssize_t n = ::recv(pending.fd.get(), scratch.data(), room, 0);
    if (n <= 0) {
        if (!nothing_yet(n))
            drop_pending(pending); // the client went away
        return;
    }
    pending.buffer.append(scratch.data(), static_cast<size_t>(n));
    on_pending_bytes(pending, have);
}

// Parses what a pending connection's buffer gained from `have` on and, once
// its head or ClientHello is settled, routes or answers it. Runs in the
// connection's own poll callback.
void Supervisor::on_pending_bytes(Pending& pending, size_t have)
{
    // A ClientHello is reread from its start (it is small and the reader
    // keeps nothing); a head is parsed on from where it stopped.
    ClientHelloPeek hello;
    auto state = HeadPeek::State::NeedMore;
    if (pending.kind == ConnectionKind::Tls) {
        hello = read_client_hello(pending.buffer, pending.head.max_head_bytes());
        if (hello.state == ClientHelloPeek::State::NeedMore)
            return;
    } else {
        state = pending.head.feed(std::string_view(pending.buffer).substr(have));
        if (state == HeadPeek::State::NeedMore)
            return;
    }

    UniqueFd fd = std::move(pending.fd);
    pending.poll.close(); // stop watching before the fd leaves this process
    // This runs in the pending connection's own poll callback, and what it
    // calls reaches the worker registry; should that ever end the pending
    // connections (a shutdown clears them all), this one is gone and
    // nothing of it is touched (common/lifetime.h).
    LifetimeGuard alive = pending.lifetime.guard();
    if (pending.kind == ConnectionKind::Tls)
        settle_client_hello(std::move(fd), pending.peer, hello, pending.buffer);
    else
        settle_head(std::move(fd), pending.peer, pending.head, state, pending.buffer);
    if (alive)
        drop_pending(pending);
}

void Supervisor::drop_pending(Pending& pending)
{
    bool was_first = pending.position == m_pending.begin();
    m_pending.erase(pending.position); // closes its poll, then its fd
    if (was_first)
        arm_head_timer();
}

void Supervisor::arm_head_timer()
{
    if (m_pending.empty()) {
        uv_timer_stop(m_head_timer.get());
        return;
    }
    start_timer_at(m_head_timer.get(), m_pending.front()->deadline_ms, [](uv_timer_t* timer) noexcept {
        if (auto* self = static_cast<Supervisor*>(timer->data))
            guard_callback("head timeout", [&] { self->on_head_timer(); });
    });
}

void Supervisor::on_head_timer()
{
    uint64_t now = uv_now(&m_loop);
    while (!m_pending.empty() && m_pending.front()->deadline_ms <= now) {
        Pending& pending = *m_pending.front();
        pending.poll.close();
        // A TLS client cannot read an HTTP answer: it sees the close.
        if (pending.kind == ConnectionKind::Plain)
            reply_and_close(std::move(pending.fd), Reply::RequestTimeout);
        m_pending.pop_front();
    }
    arm_head_timer();
}

WorkerProcess* Supervisor::find_route(std::string const& host_key) const
{
    auto it = m_routes.find(host_key);
    return it == m_routes.end() ? nullptr : it->second;
}

// Acts on a head that is complete, malformed or too large.
void Supervisor::settle_head(UniqueFd fd, SocketAddress const& peer, HeadPeek const& head, HeadPeek::State state,
    std::string_view prefix)
{
    switch (state) {
    case HeadPeek::State::Complete:
        route(std::move(fd), peer, head, prefix);
        return;
    case HeadPeek::State::Malformed:
        reply_and_close(std::move(fd), Reply::BadRequest);
        return;
    case HeadPeek::State::TooLarge:
        reply_and_close(std::move(fd), Reply::HeadTooLarge);
        return;
    case HeadPeek::State::NeedMore:
        return; // not called before the head is settled
    }
}

// Acts on a ClientHello read to its end, or found not to be one. Routing
// is by the SNI host name's host key among the https identities; the port
// plays no part, as in routing by Host (a listener on 8443 may well serve
// https://arne.example behind a port forward from 443).
void Supervisor::settle_client_hello(UniqueFd fd, SocketAddress const& peer, ClientHelloPeek const& hello,
    std::string_view prefix)
{
    switch (hello.state) {
    case ClientHelloPeek::State::ServerName: {
        auto key = host_key_from_header(hello.server_name());
        auto it = key ? m_tls_routes.find(*key) : m_tls_routes.end();
        if (it == m_tls_routes.end()) {
            reply_and_close(std::move(fd), Reply::TlsUnrecognizedName);
            return;
        }
        it->second->pass(std::move(fd), peer, prefix, ConnectionKind::Tls);
        return;
    }
    case ClientHelloPeek::State::NoServerName:
        // No identity is addressed, and there is no default one.
        reply_and_close(std::move(fd), Reply::TlsUnrecognizedName);
        return;
    case ClientHelloPeek::State::NotClientHello:
    case ClientHelloPeek::State::TooLarge:
        log::debug("%s: closed: %s", format_address(peer.get(), peer.length).c_str(),
            hello.state == ClientHelloPeek::State::TooLarge ? "ClientHello larger than max_head_bytes"
                                                            : hello.reason);
        return; // the fd closes here: nothing is said to what is not TLS
    case ClientHelloPeek::State::NeedMore:
        return; // not called before the hello is settled
    }
}

void Supervisor::route(UniqueFd fd, SocketAddress const& peer, HeadPeek const& head, std::string_view prefix)
{
    if (head.host_count() > 1) {
        reply_and_close(std::move(fd), Reply::BadRequest);
        return;
    }
    if (head.host_count() == 0) {
        // HTTP/1.0 may omit Host; then no identity is addressed.
        reply_and_close(std::move(fd), head.host_required() ? Reply::BadRequest : Reply::NotFound);
        return;
    }
    // A Host that is a served key byte for byte, as most are, needs no
    // reduction: a key reduces to itself.
    WorkerProcess* worker = find_route(head.host());
    if (!worker) {
        auto key = host_key_from_header(head.host());
        if (!key) {
            reply_and_close(std::move(fd), Reply::BadRequest);
            return;
        }
        worker = find_route(*key);
    }
    if (!worker) {
        reply_and_close(std::move(fd), Reply::NotFound);
        return;
    }
    worker->pass(std::move(fd), peer, prefix, ConnectionKind::Plain);
}

}
