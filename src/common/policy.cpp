#include "policy.h"

#include <charconv>

namespace posta {

std::string Policy::serialize() const
{
    std::string out = "rate " + std::to_string(rate_per_minute) + "\n";
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
    bool have_rate = false;
    while (!text.empty()) {
        size_t end = text.find('\n');
        if (end == std::string_view::npos)
            return Error::message("policy", "unterminated line");
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end + 1);
        size_t space = line.find(' ');
        if (space == std::string_view::npos)
            return Error::message("policy", "malformed line");
        std::string_view key = line.substr(0, space);
        std::string_view value = line.substr(space + 1);
        if (key == "rate") {
            auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out.rate_per_minute);
            if (ec != std::errc() || ptr != value.data() + value.size())
                return Error::message("policy", "bad rate");
            have_rate = true;
        } else if (key == "allow") {
            out.acl.allow.emplace_back(value);
        } else if (key == "deny") {
            out.acl.deny.emplace_back(value);
        } else if (key == "trust") {
            auto range = parse_address_range(value);
            if (!range)
                return range.error();
            out.trusted_proxies.push_back(std::move(range.value()));
        } else {
            return Error::message("policy", "unknown key");
        }
    }
    if (!have_rate)
        return Error::message("policy", "no rate");
    return out;
}

}
