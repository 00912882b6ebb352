// MintRequests: the owner-secret requests (control socket `token`) that the
// supervisor sent one worker and that it has not answered yet, each with the
// reply to give and a deadline. Pure bookkeeping, with no loop and no
// channel: WorkerProcess sends the requests and runs the timer; this matches
// each Minted answer to its request by id, bounds how many are in flight, and
// answers every request exactly once (its answer, a timeout, or the worker's
// end).
#pragma once

#include "common/result.h"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace posta {

class MintRequests {
public:
    // Called once per request with the secret or why there is none. It may
    // add requests, but must not destroy the MintRequests.
    using Done = std::function<void(Result<std::string>)>;

    explicit MintRequests(size_t max_in_flight)
        : m_max(max_in_flight)
    {
    }

    // Registers a request answered by `done`, due by `deadline_ms`; returns
    // its id (never 0). An error, and `done` is never called, when
    // max_in_flight requests wait already.
    Result<uint32_t> add(Done done, uint64_t deadline_ms);

    // Forgets request `id` without answering it: its sending failed, and the
    // caller reports that itself.
    void cancel(uint32_t id);

    // The worker's answer to `id`. False when no such request waits (it
    // timed out or was never made): the answer is for nobody.
    bool answer(uint32_t id, Result<std::string> outcome);

    // Answers every request due at `now_ms` or earlier with a timeout error.
    void expire(uint64_t now_ms);

    // Answers every request with `why`: the worker is gone.
    void fail_all(Error const& why);

    // The earliest deadline of a waiting request.
    std::optional<uint64_t> next_deadline() const;
    size_t size() const { return m_waiting.size(); }

private:
    struct Waiting {
        Done done;
        uint64_t deadline_ms;
    };

    size_t m_max;
    uint32_t m_next_id = 1;
    std::map<uint32_t, Waiting> m_waiting;
};

}
