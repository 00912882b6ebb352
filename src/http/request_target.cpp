#include "request_target.h"

#include "http/http_message.h"

namespace posta {

std::optional<RequestTarget> split_request_target(std::string_view target)
{
    RequestTarget out;
    std::string_view rest = target;
    if (target == "*") {
        out.path = "*";
        return out;
    }
    if (target.empty() || target.front() != '/') {
        size_t scheme_end = target.find("://");
        if (scheme_end == std::string_view::npos)
            return std::nullopt;
        std::string_view scheme = target.substr(0, scheme_end);
        if (!iequals(scheme, "http") && !iequals(scheme, "https"))
            return std::nullopt;
        std::string_view after = target.substr(scheme_end + 3);
        size_t authority_end = after.find_first_of("/?");
        std::string_view authority = after.substr(0, authority_end);
        if (authority.empty())
            return std::nullopt;
        out.authority = std::string(authority);
        rest = authority_end == std::string_view::npos ? std::string_view() : after.substr(authority_end);
    }
    size_t question = rest.find('?');
    out.path = std::string(rest.substr(0, question));
    if (question != std::string_view::npos)
        out.query = std::string(rest.substr(question + 1));
    if (out.path.empty())
        out.path = "/";
    return out;
}

}
