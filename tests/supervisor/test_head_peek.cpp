// HeadPeek: the supervisor's Host extraction over whole, split, oversized,
// malformed and Host-less heads.
#include "supervisor/head_peek.h"

#include <doctest/doctest.h>
#include <string>

using posta::HeadPeek;
using State = HeadPeek::State;

TEST_CASE("a whole head in one piece yields its Host")
{
    HeadPeek peek(16384);
    CHECK(peek.feed("GET /.well-known/posta HTTP/1.1\r\nHost: Arne.Local:8080\r\nAccept: */*\r\n\r\n") == State::Complete);
    CHECK(peek.host() == "Arne.Local:8080");
    CHECK(peek.host_count() == 1);
    CHECK(peek.host_required());
}

TEST_CASE("a head split at every byte yields the same Host")
{
    std::string head = "POST /inbox HTTP/1.1\r\nContent-Length: 2\r\nhOsT: marcus.local\r\n\r\n{}";
    HeadPeek peek(16384);
    State state = State::NeedMore;
    size_t fed = 0;
    while (state == State::NeedMore && fed < head.size())
        state = peek.feed(std::string_view(head).substr(fed++, 1));
    CHECK(state == State::Complete);
    CHECK(peek.host() == "marcus.local");
    // Stopped at the end of the head: the body is the worker's.
    CHECK(fed == head.size() - 2);
}

TEST_CASE("a Host value split across feeds is joined")
{
    HeadPeek peek(16384);
    CHECK(peek.feed("GET / HTTP/1.1\r\nHost: mar") == State::NeedMore);
    CHECK(peek.feed("cus.loc") == State::NeedMore);
    CHECK(peek.feed("al\r\n\r\n") == State::Complete);
    CHECK(peek.host() == "marcus.local");
}

TEST_CASE("bytes after the head are not examined")
{
    HeadPeek peek(16384);
    CHECK(peek.feed("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n\x01\x02 not http at all") == State::Complete);
    CHECK(peek.host() == "a.example");
}

TEST_CASE("a head over the bound is too large, even when split")
{
    HeadPeek peek(64);
    std::string head = "GET / HTTP/1.1\r\nHost: a.example\r\nX-Long: " + std::string(100, 'x') + "\r\n\r\n";
    CHECK(peek.feed(head.substr(0, 30)) == State::NeedMore);
    CHECK(peek.feed(head.substr(30)) == State::TooLarge);
}

TEST_CASE("a head exactly at the bound is accepted")
{
    std::string head = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
    HeadPeek peek(head.size());
    CHECK(peek.feed(head) == State::Complete);
}

TEST_CASE("garbage and TLS handshakes are malformed")
{
    HeadPeek garbage(16384);
    CHECK(garbage.feed("HELLO THERE\r\n\r\n") == State::Malformed);
    HeadPeek tls(16384);
    CHECK(tls.feed(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)) == State::Malformed);
    HeadPeek bad_header(16384);
    CHECK(bad_header.feed("GET / HTTP/1.1\r\nNo colon here\r\n\r\n") == State::Malformed);
}

TEST_CASE("a head without Host completes with no Host, required for HTTP/1.1 only")
{
    HeadPeek v11(16384);
    CHECK(v11.feed("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n") == State::Complete);
    CHECK(v11.host_count() == 0);
    CHECK(v11.host_required());

    HeadPeek v10(16384);
    CHECK(v10.feed("GET / HTTP/1.0\r\n\r\n") == State::Complete);
    CHECK(v10.host_count() == 0);
    CHECK_FALSE(v10.host_required());
}

TEST_CASE("two Host headers are counted and the first is kept")
{
    HeadPeek peek(16384);
    CHECK(peek.feed("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n") == State::Complete);
    CHECK(peek.host_count() == 2);
    CHECK(peek.host() == "a.example");
}

TEST_CASE("reset makes a peek reusable for the next connection")
{
    HeadPeek peek(16384);
    CHECK(peek.feed("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n") == State::Complete);
    peek.reset();
    CHECK(peek.feed("GET / HTTP/1.1\r\nHost: b.example\r\n\r\n") == State::Complete);
    CHECK(peek.host() == "b.example");
}
