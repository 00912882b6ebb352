#include "control_request.h"

#include "config/manifest.h"

#include <nlohmann/json.hpp>

namespace posta {

namespace {

constexpr std::string_view secret_open = "{\"secret\":\"";
constexpr std::string_view secret_close = "\"}";
// Text that stands in a JSON string as it is, and in a terminal as one word.
bool url_safe(std::string_view text)
{
    for (char c : text) {
        if (c <= ' ' || c > '~' || c == '"' || c == '\\')
            return false;
    }
    return !text.empty();
}

}

Result<ControlRequest> parse_control_request(std::string_view line)
{
    if (line == "status")
        return ControlRequest {};
    auto space = line.find(' ');
    std::string_view verb = line.substr(0, space);
    if (verb == "token" || verb == "login") {
        std::string usage = std::string(verb) + " SLUG";
        std::string_view slug = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
        if (slug.empty())
            return Error::message("control", std::string(verb) + " needs a slug: " + usage);
        if (!valid_slug(slug))
            return Error::message("control", "not a slug (a-z, 0-9 and -, at most 63): " + usage);
        return ControlRequest { ControlRequest::Kind::Mint, verb == "token" ? MintKind::ApiToken : MintKind::LoginLink,
            std::string(slug) };
    }
    return Error::message("control", "unknown request; this daemon answers status, token SLUG and login SLUG");
}

bool may_mint(uid_t peer, uid_t daemon_euid) { return peer == 0 || peer == daemon_euid; }

std::string secret_answer(std::string_view secret)
{
    // What our workers mint is a token or a URL; anything else would not be
    // JSON as written, and is not a secret of ours.
    if (!url_safe(secret))
        return error_answer("the worker answered something that is not a secret");
    std::string out(secret_open);
    out += secret;
    out += secret_close;
    return out;
}

std::string error_answer(std::string_view why)
{
    // Replaced, not refused: an error must always be answerable.
    return nlohmann::json { { "error", why } }.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<std::string_view> read_secret_answer(std::string_view answer)
{
    if (answer.size() < secret_open.size() + secret_close.size() || !answer.starts_with(secret_open)
        || !answer.ends_with(secret_close))
        return std::nullopt;
    std::string_view secret = answer.substr(secret_open.size(), answer.size() - secret_open.size() - secret_close.size());
    if (!url_safe(secret))
        return std::nullopt;
    return secret;
}

}
