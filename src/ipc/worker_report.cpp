#include "worker_report.h"

#include "ipc/text_lines.h"

#include <algorithm>
#include <charconv>

namespace posta {

namespace {

constexpr char const* k_response_keys[] = { "responses_1xx", "responses_2xx", "responses_3xx", "responses_4xx",
    "responses_5xx" };
constexpr size_t max_code_length = 64;

// The plain counters and gauges, by their key.
struct Scalar {
    std::string_view key;
    uint64_t WorkerReport::*field;
};
constexpr Scalar k_scalars[] = {
    { "accepted", &WorkerReport::deliveries_accepted },
    { "duplicate", &WorkerReport::deliveries_duplicate },
    { "queued", &WorkerReport::outbox_queued },
    { "delivered", &WorkerReport::outbox_delivered },
    { "failed", &WorkerReport::outbox_failed },
    { "oldest_queued_ms", &WorkerReport::outbox_oldest_queued_ms },
    { "subscribers", &WorkerReport::event_subscribers },
    { "connections", &WorkerReport::open_connections },
};

bool valid_code(std::string_view code)
{
    return !code.empty() && code.size() <= max_code_length
        && std::all_of(code.begin(), code.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

template<typename T>
bool parse_number(std::string_view text, T& out)
{
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

void append_line(std::string& out, std::string_view key, uint64_t value)
{
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    out.append(key).append(1, ' ').append(digits, end).append(1, '\n');
}

}

void CodeCounts::add(std::string_view code, uint64_t count)
{
    auto it = std::lower_bound(entries.begin(), entries.end(), code,
        [](auto const& entry, std::string_view key) { return entry.first < key; });
    if (it != entries.end() && it->first == code)
        it->second += count;
    else if (entries.size() < max_codes)
        entries.emplace(it, std::string(code), count);
}

void CodeCounts::add(CodeCounts const& other)
{
    for (auto const& [code, count] : other.entries)
        add(code, count);
}

void WorkerReport::add_counters(WorkerReport const& other)
{
    for (size_t i = 0; i < responses.size(); ++i)
        responses[i] += other.responses[i];
    deliveries_accepted += other.deliveries_accepted;
    deliveries_duplicate += other.deliveries_duplicate;
    deliveries_refused.add(other.deliveries_refused);
}

std::string WorkerReport::serialize() const
{
    std::string out;
    out.reserve(512);
    for (size_t i = 0; i < responses.size(); ++i)
        append_line(out, k_response_keys[i], responses[i]);
    for (Scalar const& scalar : k_scalars)
        append_line(out, scalar.key, this->*scalar.field);
    for (auto const& [code, count] : deliveries_refused.entries)
        append_line(out, "refused " + code, count);
    return out;
}

Result<WorkerReport> WorkerReport::deserialize(std::string_view text)
{
    WorkerReport out;
    // Each plain key once; unknown keys are refused, so that a worker and
    // a supervisor of different builds are noticed rather than misread.
    uint32_t seen = 0;
    auto once = [&](unsigned bit) {
        bool first = !(seen & (1u << bit));
        seen |= 1u << bit;
        return first;
    };
    auto lines = split_lines(text, "metrics report");
    if (!lines)
        return lines.error();
    for (std::string_view line : *lines) {
        size_t space = line.rfind(' ');
        if (space == std::string_view::npos)
            return Error::message("metrics report", "line without a value");
        std::string_view key = line.substr(0, space);
        uint64_t value = 0;
        if (!parse_number(line.substr(space + 1), value))
            return Error::message("metrics report", "bad number for " + std::string(key.substr(0, max_code_length)));

        if (key.starts_with("refused ")) {
            std::string_view code = key.substr(8);
            if (!valid_code(code))
                return Error::message("metrics report", "bad refusal code");
            auto& refused = out.deliveries_refused.entries;
            if (!refused.empty() && refused.back().first >= code)
                return Error::message("metrics report", "refusal codes out of order or repeated");
            if (refused.size() == CodeCounts::max_codes)
                return Error::message("metrics report", "too many refusal codes");
            refused.emplace_back(std::string(code), value);
            continue;
        }
        uint64_t* field = nullptr;
        unsigned bit = 0;
        for (size_t i = 0; i < out.responses.size(); ++i)
            if (key == k_response_keys[i])
                field = &out.responses[i], bit = static_cast<unsigned>(i);
        for (size_t i = 0; i < std::size(k_scalars) && !field; ++i)
            if (key == k_scalars[i].key)
                field = &(out.*k_scalars[i].field), bit = static_cast<unsigned>(out.responses.size() + i);
        if (!field)
            return Error::message("metrics report", "unknown key " + std::string(key.substr(0, max_code_length)));
        if (!once(bit))
            return Error::message("metrics report", "repeated key " + std::string(key));
        *field = value;
    }
    return out;
}

}
