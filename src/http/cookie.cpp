#include "cookie.h"

namespace posta {

std::vector<std::string_view> cookie_values(Headers const& headers, std::string_view name)
{
    std::vector<std::string_view> values;
    for (auto const& [field, value] : headers) {
        if (!iequals(field, "Cookie"))
            continue;
        std::string_view rest = value;
        while (!rest.empty()) {
            size_t end = rest.find(';');
            std::string_view pair = rest.substr(0, end);
            rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
            size_t equals = pair.find('=');
            if (equals == std::string_view::npos)
                continue;
            std::string_view key = trim_ows(pair.substr(0, equals));
            if (key.empty() || key != name)
                continue;
            std::string_view cookie = trim_ows(pair.substr(equals + 1));
            if (cookie.size() >= 2 && cookie.front() == '"' && cookie.back() == '"')
                cookie = cookie.substr(1, cookie.size() - 2);
            values.push_back(cookie);
        }
    }
    return values;
}

std::string strict_cookie(std::string_view name, std::string_view value, int64_t max_age_seconds,
    CookieTransport transport)
{
    std::string out;
    out.reserve(name.size() + value.size() + 80);
    out.append(name).append("=").append(value);
    out += "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" + std::to_string(max_age_seconds);
    if (transport == CookieTransport::TlsOnly)
        out += "; Secure";
    return out;
}

}
