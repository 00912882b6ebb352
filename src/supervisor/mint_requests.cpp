#include "mint_requests.h"

#include <algorithm>
#include <vector>

namespace posta {

Result<uint32_t> MintRequests::add(Done done, uint64_t deadline_ms)
{
    if (m_waiting.size() >= m_max)
        return Error::message("mint", std::to_string(m_max) + " requests wait for its worker already; try again");
    uint32_t id = m_next_id++;
    if (m_next_id == 0)
        m_next_id = 1;
    m_waiting.emplace(id, Waiting { std::move(done), deadline_ms });
    return id;
}

void MintRequests::cancel(uint32_t id) { m_waiting.erase(id); }

bool MintRequests::answer(uint32_t id, Result<std::string> outcome)
{
    auto it = m_waiting.find(id);
    if (it == m_waiting.end())
        return false;
    // Out of the table before the call: `done` may add requests.
    Done done = std::move(it->second.done);
    m_waiting.erase(it);
    done(std::move(outcome));
    return true;
}

void MintRequests::expire(uint64_t now_ms)
{
    std::vector<uint32_t> due;
    for (auto const& [id, waiting] : m_waiting) {
        if (waiting.deadline_ms <= now_ms)
            due.push_back(id);
    }
    for (uint32_t id : due)
        answer(id, Error::message("mint", "its worker did not answer in time (is it hung?)"));
}

void MintRequests::fail_all(Error const& why)
{
    std::vector<uint32_t> all;
    for (auto const& entry : m_waiting)
        all.push_back(entry.first);
    for (uint32_t id : all)
        answer(id, why);
}

std::optional<uint64_t> MintRequests::next_deadline() const
{
    if (m_waiting.empty())
        return std::nullopt;
    return std::min_element(m_waiting.begin(), m_waiting.end(), [](auto const& a, auto const& b) {
        return a.second.deadline_ms < b.second.deadline_ms;
    })->second.deadline_ms;
}

}
