#include "policy.h"

#include "ipc/text_lines.h"

#include <charconv>
#include <cstdint>

namespace posta {

// A tripwire for whoever adds a field: add it to take_config(), serialize()
// and deserialize() below (and to test_policy.cpp), then update the size.
static_assert(sizeof(Policy) == sizeof(Acl) + 8 + sizeof(std::vector<AddressRange>) + 4 * 8 + 2 * sizeof(int),
    "Policy changed: carry the new field over the channel");

namespace {

template<typename T> bool parse_number(std::string_view text, T& out)
{
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size();
}

std::string line(char const* key, uint64_t value) { return std::string(key) + " " + std::to_string(value) + "\n"; }

uint64_t ms(Duration d) { return static_cast<uint64_t>(d.count()); }

}

void Policy::take_config(Config const& config)
{
    trusted_proxies = config.trusted_proxies;
    max_head_bytes = config.max_head_bytes;
    head_timeout = config.head_timeout;
    body_timeout = config.body_timeout;
    max_connections_per_address = config.max_connections_per_address;
    log_level = config.log_level;
    log_format = config.log_format;
}

std::string Policy::serialize() const
{
    std::string out = line("rate", rate_per_minute);
    out += line("max_head_bytes", max_head_bytes);
    out += line("head_timeout", ms(head_timeout));
    out += line("body_timeout", ms(body_timeout));
    out += line("max_connections_per_address", max_connections_per_address);
    out += line("log_level", static_cast<uint64_t>(log_level));
    out += line("log_format", static_cast<uint64_t>(log_format));
    for (auto const& pattern : acl.allow)
        out += "allow " + pattern + "\n";
    for (auto const& pattern : acl.deny)
        out += "deny " + pattern + "\n";
    for (auto const& range : trusted_proxies)
        out += "trust " + range.text + "\n";
    return out;
}

Result<Policy> Policy::deserialize(std::string_view text)
{
    Policy out;
    int64_t head_ms = 0, body_ms = 0;
    unsigned level = 0, format = 0;
    // Each scalar field, and whether it was seen: all must be, once.
    struct Scalar {
        char const* key;
        bool (*parse)(std::string_view, void*);
        void* target;
        bool seen = false;
    };
    auto parse_unsigned = [](std::string_view v, void* t) { return parse_number(v, *static_cast<unsigned*>(t)); };
    auto parse_size = [](std::string_view v, void* t) { return parse_number(v, *static_cast<size_t*>(t)); };
    auto parse_ms = [](std::string_view v, void* t) { return parse_number(v, *static_cast<int64_t*>(t)); };
    Scalar scalars[] = {
        { "rate", parse_unsigned, &out.rate_per_minute },
        { "max_head_bytes", parse_size, &out.max_head_bytes },
        { "head_timeout", parse_ms, &head_ms },
        { "body_timeout", parse_ms, &body_ms },
        { "max_connections_per_address", parse_size, &out.max_connections_per_address },
        { "log_level", parse_unsigned, &level },
        { "log_format", parse_unsigned, &format },
    };
    auto lines = split_lines(text, "policy");
    if (!lines)
        return lines.error();
    for (std::string_view line : *lines) {
        size_t space = line.find(' ');
        if (space == std::string_view::npos)
            return Error::message("policy", "malformed line");
        std::string_view key = line.substr(0, space);
        std::string_view value = line.substr(space + 1);
        if (key == "allow") {
            out.acl.allow.emplace_back(value);
        } else if (key == "deny") {
            out.acl.deny.emplace_back(value);
        } else if (key == "trust") {
            auto range = parse_address_range(value);
            if (!range)
                return range.error();
            out.trusted_proxies.push_back(std::move(range.value()));
        } else {
            Scalar* scalar = nullptr;
            for (auto& candidate : scalars)
                if (key == candidate.key)
                    scalar = &candidate;
            if (!scalar)
                return Error::message("policy", "unknown key", std::string(key));
            if (scalar->seen || !scalar->parse(value, scalar->target))
                return Error::message("policy", "bad value", std::string(key));
            scalar->seen = true;
        }
    }
    for (auto const& scalar : scalars)
        if (!scalar.seen)
            return Error::message("policy", "missing", scalar.key);
    if (head_ms < 0 || body_ms < 0 || level > static_cast<unsigned>(log::Level::Error)
        || format > static_cast<unsigned>(log::Format::Json))
        return Error::message("policy", "value out of range");
    out.head_timeout = Duration(head_ms);
    out.body_timeout = Duration(body_ms);
    out.log_level = static_cast<log::Level>(level);
    out.log_format = static_cast<log::Format>(format);
    return out;
}

}
