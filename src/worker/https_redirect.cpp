#include "https_redirect.h"

#include "common/log.h"
#include "common/fd_io.h"
#include "common/unique_fd.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>

namespace posta {

namespace {

constexpr std::string_view challenge_prefix = "/.well-known/acme-challenge/";

// The challenge file's bytes, or nullopt when there is none to serve: the
// folder or the file missing, either a symlink (O_NOFOLLOW: a challenge
// file is written in place by the ACME client, never linked), not a
// regular file, or larger than max_challenge_bytes. Blocking reads of one
// small local file; O_NONBLOCK only keeps a FIFO from holding the open.
std::optional<std::string> read_challenge(std::string const& dir, std::string_view token)
{
    UniqueFd folder(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!folder)
        return std::nullopt;
    std::string name(token);
    UniqueFd file(::openat(folder.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!file) {
        if (errno == ELOOP)
            log::info("acme-challenge: %s/%s is a symlink; not served (write the file itself there)", dir.c_str(),
                name.c_str());
        return std::nullopt;
    }
    struct stat st {};
    if (::fstat(file.get(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > static_cast<off_t>(max_challenge_bytes))
        return std::nullopt;
    std::string out(static_cast<size_t>(st.st_size), '\0');
    if (!read_into(file.get(), out, name))
        return std::nullopt;
    return out;
}

}

bool valid_challenge_token(std::string_view token)
{
    if (token.empty() || token.size() > 255)
        return false;
    for (char c : token) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

HttpsRedirect::HttpsRedirect(std::string https_url, std::string challenge_dir)
    : m_https_url(std::move(https_url))
    , m_challenge_dir(std::move(challenge_dir))
{
}

std::optional<Response> HttpsRedirect::answer(Request const& request) const
{
    if (request.secure)
        return std::nullopt;
    std::string_view path = request.path;
    if ((request.method == "GET" || request.is_head()) && path.starts_with(challenge_prefix)) {
        std::string_view token = path.substr(challenge_prefix.size());
        auto content = valid_challenge_token(token) ? read_challenge(m_challenge_dir, token) : std::nullopt;
        if (!content)
            return Response::error(404, "not_found", "no such challenge");
        Response response;
        response.headers.set("Content-Type", "application/octet-stream");
        response.body = std::move(*content);
        return response;
    }
    // Refs: RFC 9110 section 15.4.9: 308 keeps the method and body.
    Response response = Response::error(308, "use_https", "this identity is served over https");
    std::string location = m_https_url + request.path;
    if (!request.query.empty())
        location += "?" + request.query;
    response.headers.set("Location", std::move(location));
    return response;
}

}
