#include "status_command.h"

#include "cli/control_client.h"

#include <cstdio>
#include <nlohmann/json.hpp>

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
    auto answer = ask_daemon(control_socket, "status", std::chrono::milliseconds(answer_timeout_ms));
    if (!answer) {
        std::fprintf(stderr, "posta-server status: %s (is the daemon running with this --config?)\n",
            answer.error().text().c_str());
        return 1;
    }
    auto doc = nlohmann::json::parse(answer.value(), nullptr, false);
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
