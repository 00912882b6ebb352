#include "channel.h"

#include <cstring>
#include <string.h>
#include <sys/uio.h>

namespace posta {

namespace {

// Fixed part of every message; a Connection is followed by its prefix bytes.
struct WireHeader {
    MessageType type;
    uint32_t prefix_len;
    uint32_t peer_len;
    uint32_t count;
    ConnectionKind kind;
    uint32_t detail; // Mint: the MintKind; Minted: the MintOutcome
    sockaddr_storage peer;
};

WireHeader header_of(MessageType type, uint32_t count = 0, uint32_t detail = 0)
{
    WireHeader header {};
    header.type = type;
    header.count = count;
    header.detail = detail;
    return header;
}

// Sends `header` with `prefix` after it and, unless `fd` is -1, passes the
// fd (SCM_RIGHTS) with it. Every message goes out through here.
Result<void> send_message(int channel, WireHeader header, std::string_view prefix = {}, int fd = -1)
{
    if (prefix.size() > max_channel_prefix)
        return Error::message("send", "message too large for the channel");
    header.prefix_len = static_cast<uint32_t>(prefix.size());
    iovec iov[2] = {
        { &header, sizeof header },
        { const_cast<char*>(prefix.data()), prefix.size() },
    };
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] {};
    msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = prefix.empty() ? 1 : 2;
    if (fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    if (::sendmsg(channel, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        return Error::from_errno("sendmsg", "worker channel");
    return {};
}

// A message without an fd whose prefix carries text: Policy, TlsStatus,
// Start, Forked, Minted, Metrics.
Result<void> send_text(int channel, MessageType type, std::string_view text, uint32_t count = 0, uint32_t detail = 0)
{
    return send_message(channel, header_of(type, count, detail), text);
}

// A message that passes one fd with an optional address and prefix:
// Connection, Fork.
Result<void> send_with_fd(int channel, MessageType type, int fd, sockaddr const* peer, socklen_t peer_len,
    std::string_view prefix, ConnectionKind kind = ConnectionKind::Plain)
{
    if (fd < 0)
        return Error::message("send", "no fd to pass");
    if (peer_len > sizeof(sockaddr_storage))
        return Error::message("send", "address too large for the channel");
    WireHeader header = header_of(type);
    header.peer_len = peer_len;
    header.kind = kind;
    if (peer_len > 0)
        std::memcpy(&header.peer, peer, peer_len);
    return send_message(channel, header, prefix, fd);
}

}

char const* mint_kind_name(MintKind kind)
{
    switch (kind) {
    case MintKind::ApiToken:
        return "API token";
    case MintKind::LoginLink:
        return "sign-in link";
    }
    return "secret";
}

bool is_mint_kind(uint32_t value)
{
    return value == static_cast<uint32_t>(MintKind::ApiToken) || value == static_cast<uint32_t>(MintKind::LoginLink);
}

Result<std::pair<UniqueFd, UniqueFd>> make_channel()
{
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
        return Error::from_errno("socketpair", "worker channel");
    return std::pair { UniqueFd(fds[0]), UniqueFd(fds[1]) };
}

Result<void> send_connection(int channel, int conn_fd, sockaddr const* peer, socklen_t peer_len,
    std::string_view prefix, ConnectionKind kind)
{
    return send_with_fd(channel, MessageType::Connection, conn_fd, peer, peer_len, prefix, kind);
}

Result<void> send_fork(int channel, int worker_channel, std::string_view slug)
{
    return send_with_fd(channel, MessageType::Fork, worker_channel, nullptr, 0, slug);
}

Result<void> send_forked(int channel, pid_t pid, std::string_view why)
{
    return send_text(channel, MessageType::Forked, why.substr(0, 1024), static_cast<uint32_t>(pid));
}

Result<void> send_start(int channel, std::string_view serialized)
{
    return send_text(channel, MessageType::Start, serialized);
}

Result<void> send_policy(int channel, std::string_view serialized)
{
    return send_text(channel, MessageType::Policy, serialized);
}

Result<void> send_tls_status(int channel, std::string_view problem)
{
    return send_text(channel, MessageType::TlsStatus, problem.substr(0, 4096));
}

Result<void> send_metrics(int channel, std::string_view serialized)
{
    return send_text(channel, MessageType::Metrics, serialized);
}

Result<void> send_ready(int channel) { return send_message(channel, header_of(MessageType::Ready)); }

Result<void> send_taken(int channel, uint32_t count) { return send_message(channel, header_of(MessageType::Taken, count)); }

Result<void> send_mint(int channel, uint32_t id, MintKind kind)
{
    return send_message(channel, header_of(MessageType::Mint, id, static_cast<uint32_t>(kind)));
}

Result<void> send_minted(int channel, uint32_t id, MintOutcome outcome, std::string_view secret_or_why)
{
    return send_text(channel, MessageType::Minted, secret_or_why.substr(0, 4096), id,
        static_cast<uint32_t>(outcome));
}

Result<std::optional<ChannelMessage>> receive_message(int channel)
{
    WireHeader header {};
    // The prefix lands in one scratch buffer per process (both processes are
    // single-threaded) and is copied out at its real size: no message pays
    // for zeroing or keeping the largest possible prefix.
    static char scratch[max_channel_prefix];
    ChannelMessage message;
    iovec iov[2] = {
        { &header, sizeof header },
        { scratch, sizeof scratch },
    };
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] {};
    msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;

    ssize_t n = ::recvmsg(channel, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return std::optional<ChannelMessage> {};
        return Error::from_errno("recvmsg", "worker channel");
    }

    // Own every received fd at once, so that no error path below leaks one.
    UniqueFd received[4];
    size_t received_count = 0;
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count && received_count < 4; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
            received[received_count++].reset(fd);
        }
    }

    if (n == 0) {
        message.type = MessageType::Closed;
        return std::optional { std::move(message) };
    }
    if ((msg.msg_flags & MSG_TRUNC) || static_cast<size_t>(n) < sizeof header)
        return Error::message("recvmsg", "truncated message", "worker channel");
    // MSG_CTRUNC on a connection that brought no fd: the kernel could not
    // install the fd here (we are at RLIMIT_NOFILE) and closed it. The
    // message is intact; the caller learns of the loss from the empty fd.
    bool fd_lost = (msg.msg_flags & MSG_CTRUNC) && received_count == 0 && header.type == MessageType::Connection;
    if ((msg.msg_flags & MSG_CTRUNC) && !fd_lost)
        return Error::message("recvmsg", "truncated control data", "worker channel");

    size_t prefix_len = static_cast<size_t>(n) - sizeof header;
    if (header.prefix_len != prefix_len || header.peer_len > sizeof(sockaddr_storage))
        return Error::message("recvmsg", "malformed message", "worker channel");

    message.type = header.type;
    message.prefix.assign(scratch, prefix_len);
    if (header.type == MessageType::Minted)
        ::explicit_bzero(scratch, prefix_len); // a credential: only the message's copy remains
    switch (header.type) {
    case MessageType::Fork:
        if (received_count != 1)
            return Error::message("recvmsg", "fork message without exactly one fd", "template channel");
        message.fd = std::move(received[0]);
        break;
    case MessageType::Connection:
        if (received_count != 1 && !fd_lost)
            return Error::message("recvmsg", "connection message without exactly one fd", "worker channel");
        if (header.kind != ConnectionKind::Plain && header.kind != ConnectionKind::Tls)
            return Error::message("recvmsg", "unknown connection kind", "worker channel");
        message.fd = std::move(received[0]);
        message.kind = header.kind;
        message.peer = header.peer;
        message.peer_len = header.peer_len;
        break;
    case MessageType::Mint:
        if (received_count != 0 || prefix_len != 0)
            return Error::message("recvmsg", "malformed mint request", "worker channel");
        if (!is_mint_kind(header.detail))
            return Error::message("recvmsg", "unknown mint kind", "worker channel");
        message.count = header.count;
        message.mint = static_cast<MintKind>(header.detail);
        break;
    case MessageType::Minted:
        if (received_count != 0)
            return Error::message("recvmsg", "unexpected fd", "worker channel");
        if (header.detail != static_cast<uint32_t>(MintOutcome::Minted)
            && header.detail != static_cast<uint32_t>(MintOutcome::Failed))
            return Error::message("recvmsg", "unknown mint outcome", "worker channel");
        message.count = header.count;
        message.outcome = static_cast<MintOutcome>(header.detail);
        break;
    case MessageType::Policy:
    case MessageType::TlsStatus:
    case MessageType::Start:
    case MessageType::Ready:
    case MessageType::Taken:
    case MessageType::Forked:
    case MessageType::Metrics:
        if (received_count != 0)
            return Error::message("recvmsg", "unexpected fd", "worker channel");
        message.count = header.count;
        break;
    default:
        return Error::message("recvmsg", "unknown message type " + std::to_string(static_cast<uint32_t>(header.type)),
            "worker channel");
    }
    return std::optional { std::move(message) };
}

}
