// The supervisor <-> worker channel codec (ipc/channel.h), over a real
// SOCK_SEQPACKET pair: every message comes back as sent, a passed fd is a
// working, close-on-exec copy, and a frame that is truncated, oversized or
// missing its fd is an error rather than a guess.
#include "ipc/channel.h"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

using namespace posta;

namespace {

struct Channel {
    UniqueFd supervisor;
    UniqueFd worker;

    Channel()
    {
        auto made = make_channel();
        REQUIRE(made);
        supervisor = std::move(made->first);
        worker = std::move(made->second);
    }
};

ChannelMessage receive(int fd)
{
    auto received = receive_message(fd);
    REQUIRE_MESSAGE(received, (received ? "" : received.error().text()));
    REQUIRE(received.value());
    return std::move(*received.value());
}

std::string receive_error(int fd)
{
    auto received = receive_message(fd);
    REQUIRE_FALSE(received);
    return received.error().text();
}

// The bytes of the next datagram on `fd`, as the codec wrote them (any fd
// that came with it is closed by the kernel: no control buffer is given).
std::string raw_datagram(int fd)
{
    std::string bytes(2 * max_channel_prefix, '\0');
    ssize_t n = ::recv(fd, bytes.data(), bytes.size(), 0);
    REQUIRE(n > 0);
    bytes.resize(static_cast<size_t>(n));
    return bytes;
}

// The frame of a Policy message as the codec writes it, taken off the channel.
std::string policy_frame(Channel& channel)
{
    REQUIRE(send_policy(channel.supervisor.get(), "rate 5\n"));
    return raw_datagram(channel.worker.get());
}

void send_raw(int fd, std::string const& bytes)
{
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

// Both ends of a connected AF_UNIX stream: an fd to pass, and its peer.
std::pair<UniqueFd, UniqueFd> stream_pair()
{
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    return { UniqueFd(pair[0]), UniqueFd(pair[1]) };
}

sockaddr_in loopback(uint16_t port)
{
    sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

}

TEST_CASE("an empty channel has nothing waiting, and a closed one says Closed")
{
    Channel channel;
    auto nothing = receive_message(channel.worker.get());
    REQUIRE(nothing);
    CHECK_FALSE(nothing.value());
    channel.supervisor.reset();
    CHECK(receive(channel.worker.get()).type == MessageType::Closed);
}

TEST_CASE("messages without an fd come back with their type, count and text")
{
    Channel channel;
    int s = channel.supervisor.get();
    int w = channel.worker.get();
    REQUIRE(send_ready(w));
    REQUIRE(send_taken(w, 17));
    REQUIRE(send_tls_status(w, "no certificate"));
    REQUIRE(send_metrics(w, "responses_2xx 3\n"));
    REQUIRE(send_policy(s, "rate 5\n"));
    REQUIRE(send_start(s, "start text"));
    REQUIRE(send_forked(s, 4321, "why not"));

    CHECK(receive(s).type == MessageType::Ready);
    auto taken = receive(s);
    CHECK(taken.type == MessageType::Taken);
    CHECK(taken.count == 17);
    auto tls = receive(s);
    CHECK(tls.type == MessageType::TlsStatus);
    CHECK(tls.prefix == "no certificate");
    auto metrics = receive(s);
    CHECK(metrics.type == MessageType::Metrics);
    CHECK(metrics.prefix == "responses_2xx 3\n");
    auto policy = receive(w);
    CHECK(policy.type == MessageType::Policy);
    CHECK(policy.prefix == "rate 5\n");
    auto start = receive(w);
    CHECK(start.type == MessageType::Start);
    CHECK(start.prefix == "start text");
    auto forked = receive(w);
    CHECK(forked.type == MessageType::Forked);
    CHECK(forked.count == 4321);
    CHECK(forked.prefix == "why not");
}

TEST_CASE("a mint request and its answer keep their id, kind and outcome")
{
    Channel channel;
    REQUIRE(send_mint(channel.supervisor.get(), 9, MintKind::LoginLink));
    auto request = receive(channel.worker.get());
    CHECK(request.type == MessageType::Mint);
    CHECK(request.count == 9);
    CHECK(request.mint == MintKind::LoginLink);

    REQUIRE(send_minted(channel.worker.get(), 9, MintOutcome::Failed, "store busy"));
    auto answer = receive(channel.supervisor.get());
    CHECK(answer.type == MessageType::Minted);
    CHECK(answer.count == 9);
    CHECK(answer.outcome == MintOutcome::Failed);
    CHECK(answer.prefix == "store busy");
}

TEST_CASE("a passed connection arrives as a working close-on-exec fd with its peer, prefix and kind")
{
    Channel channel;
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    UniqueFd ours(pair[0]);
    UniqueFd client(pair[1]);
    sockaddr_in peer = loopback(51234);
    REQUIRE(send_connection(channel.supervisor.get(), ours.get(), reinterpret_cast<sockaddr const*>(&peer), sizeof peer,
        "GET / HTTP/1.1\r\n", ConnectionKind::Tls));
    ours.reset(); // the worker's copy is the only one left

    auto message = receive(channel.worker.get());
    CHECK(message.type == MessageType::Connection);
    CHECK(message.kind == ConnectionKind::Tls);
    CHECK(message.prefix == "GET / HTTP/1.1\r\n");
    REQUIRE(message.peer_len == sizeof peer);
    CHECK(std::memcmp(&message.peer, &peer, sizeof peer) == 0);
    REQUIRE(message.fd);
    CHECK((::fcntl(message.fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    REQUIRE(::write(message.fd.get(), "hi", 2) == 2);
    char got[2] {};
    REQUIRE(::read(client.get(), got, sizeof got) == 2);
    CHECK(std::string(got, 2) == "hi");
}

TEST_CASE("a prefix larger than the channel carries is refused by the sender")
{
    Channel channel;
    std::string big(max_channel_prefix + 1, 'x');
    CHECK_FALSE(send_policy(channel.supervisor.get(), big));
    auto [a, b] = stream_pair();
    CHECK_FALSE(send_connection(channel.supervisor.get(), a.get(), nullptr, 0, big, ConnectionKind::Plain));
    auto nothing = receive_message(channel.worker.get());
    REQUIRE(nothing);
    CHECK_FALSE(nothing.value()); // nothing half-sent
}

TEST_CASE("a frame shorter than its header is an error")
{
    Channel channel;
    std::string frame = policy_frame(channel);
    send_raw(channel.supervisor.get(), frame.substr(0, 4));
    CHECK(receive_error(channel.worker.get()).find("truncated") != std::string::npos);
}

TEST_CASE("a frame whose text is shorter than its header says is an error")
{
    Channel channel;
    std::string frame = policy_frame(channel);
    send_raw(channel.supervisor.get(), frame.substr(0, frame.size() - 1));
    CHECK(receive_error(channel.worker.get()).find("malformed") != std::string::npos);
}

TEST_CASE("a frame larger than any message is an error, not cut short")
{
    Channel channel;
    std::string frame = policy_frame(channel);
    send_raw(channel.supervisor.get(), frame + std::string(max_channel_prefix, 'x'));
    CHECK(receive_error(channel.worker.get()).find("truncated") != std::string::npos);
}

TEST_CASE("a connection frame without its fd is an error")
{
    Channel channel;
    auto [a, b] = stream_pair();
    REQUIRE(send_connection(channel.supervisor.get(), a.get(), nullptr, 0, "GET", ConnectionKind::Plain));
    std::string frame = raw_datagram(channel.worker.get());
    send_raw(channel.supervisor.get(), frame);
    CHECK(receive_error(channel.worker.get()).find("without exactly one fd") != std::string::npos);
}

TEST_CASE("a fork request passes the new worker's channel end, owned by the receiver, and its slug")
{
    Channel channel;
    auto [a, b] = stream_pair();
    REQUIRE(send_fork(channel.supervisor.get(), a.get(), "arne"));
    a.reset();
    auto fork = receive(channel.worker.get());
    CHECK(fork.type == MessageType::Fork);
    CHECK(fork.prefix == "arne");
    REQUIRE(fork.fd);
    fork.fd.reset();
    // With every copy of `a` gone, `b` reads EOF: the received fd was owned and closed.
    char byte;
    CHECK(::read(b.get(), &byte, 1) == 0);
}
