// Lifetime: the one way an object learns that it died while it was calling
// out, and the one way a callback learns that its target is gone. Linked by
// both processes; it owns nothing but a token.
//
// The rule, for every object that may be destroyed from inside a call it
// makes (a user callback, a waiter, an event sink) or whose callbacks may run
// after it died (a request another object still holds):
// - it keeps a `Lifetime` member;
// - a callback that may outlive it captures `guard()` next to `this` and
//   returns at once if the guard has expired;
// - code that calls out and may die meanwhile takes a guard before the call
//   and returns, touching nothing of itself, once the guard has expired.
// libuv handles are the other half: their memory is freed in the close
// callback (UvHandle), so destroying their owner inside their own callback
// is safe.
#pragma once

#include <memory>

namespace posta {

class LifetimeGuard {
public:
    LifetimeGuard() = default;
    // Whether the Lifetime it came from still exists (and was not ended).
    bool alive() const { return !m_token.expired(); }
    explicit operator bool() const { return alive(); }

private:
    friend class Lifetime;
    explicit LifetimeGuard(std::weak_ptr<void const> token)
        : m_token(std::move(token))
    {
    }
    std::weak_ptr<void const> m_token;
};

class Lifetime {
public:
    Lifetime()
        : m_token(std::make_shared<char>())
    {
    }
    // Not copyable or movable: a guard is about one object at one address.
    Lifetime(Lifetime const&) = delete;
    Lifetime& operator=(Lifetime const&) = delete;

    LifetimeGuard guard() const { return LifetimeGuard(m_token); }

    // Expires every guard now, before the owner's destructor has finished
    // (its first statement, when what it does next may run callbacks).
    void end() { m_token.reset(); }

private:
    std::shared_ptr<void const> m_token;
};

}
