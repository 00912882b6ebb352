// What every fuzz target in fuzz/ shares: a failed invariant is a crash, so
// libFuzzer keeps the input in fuzz/crashes/ like any other crash, and the
// message says which property broke.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace posta::fuzz {

[[noreturn]] inline void fail(char const* what)
{
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
}

inline void require(bool condition, char const* what)
{
    if (!condition)
        fail(what);
}

}
