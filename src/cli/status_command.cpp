#include "status_command.h"

#include "common/unique_fd.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

namespace posta {

namespace {

constexpr int answer_timeout_ms = 5000;

std::string format_uptime(uint64_t seconds)
{
    char buf[32];
    if (seconds >= 86400)
        std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(seconds / 86400),
            static_cast<unsigned long long>(seconds % 86400 / 3600));
    else if (seconds >= 3600)
        std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(seconds / 3600),
            static_cast<unsigned long long>(seconds % 3600 / 60));
    else
        std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(seconds / 60),
            static_cast<unsigned long long>(seconds % 60));
    return buf;
}

}

int run_status_command(std::string const& control_socket, bool json)
{
    auto fail = [&](char const* what) {
        std::fprintf(stderr, "posta-server status: %s %s: %s (is the daemon running with this --config?)\n", what,
            control_socket.c_str(), std::strerror(errno));
        return 1;
    };
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (control_socket.size() >= sizeof addr.sun_path) {
        std::fprintf(stderr, "posta-server status: control socket path too long: %s\n", control_socket.c_str());
        return 1;
    }
    std::memcpy(addr.sun_path, control_socket.data(), control_socket.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return fail("socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        return fail("connect");
    static char const request[] = "status\n";
    if (::send(fd.get(), request, sizeof request - 1, MSG_NOSIGNAL) < 0)
        return fail("send to");

    std::string answer;
    char buf[65536];
    for (;;) {
        pollfd p { fd.get(), POLLIN, 0 };
        int ready = ::poll(&p, 1, answer_timeout_ms);
        if (ready == 0) {
            errno = ETIMEDOUT;
            return fail("no answer on");
        }
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0)
            return fail("recv from");
        if (n == 0)
            break;
        answer.append(buf, static_cast<size_t>(n));
    }

    auto doc = nlohmann::json::parse(answer, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        std::fprintf(stderr, "posta-server status: unreadable answer on %s\n", control_socket.c_str());
        return 1;
    }
    if (json) {
        std::printf("%s\n", doc.dump(2).c_str());
        return 0;
    }
    std::printf("supervisor %d, up %s, %zu identities, %u reloads", doc.value("pid", 0),
        format_uptime(doc.value("uptime_s", 0ULL)).c_str(), doc["identities"].size(), doc.value("reloads", 0U));
    if (doc["last_reload_error"].is_string())
        std::printf(", last reload failed: %s", doc["last_reload_error"].get<std::string>().c_str());
    std::printf("\n%-20s %-28s %-9s %8s %9s %8s %7s\n", "SLUG", "HOST", "STATE", "PID", "UPTIME", "RESTARTS",
        "PENDING");
    for (auto const& ident : doc["identities"]) {
        std::string pid = ident["pid"].is_number() ? std::to_string(ident["pid"].get<int>()) : "-";
        std::printf("%-20s %-28s %-9s %8s %9s %8u %7u\n", ident.value("slug", "").c_str(),
            ident.value("host", "").c_str(), ident.value("state", "").c_str(), pid.c_str(),
            format_uptime(ident.value("uptime_s", 0ULL)).c_str(), ident.value("restarts", 0U),
            ident.value("pending", 0U));
        if (ident["tls_problem"].is_string())
            std::printf("%-20s TLS: %s\n", "", ident["tls_problem"].get<std::string>().c_str());
    }
    return 0;
}

}
