// posta-server: the command line. `serve` runs the supervisor (which forks
// the workers); `check` validates the operator's files without serving.
#include "common/acl.h"
#include "common/config.h"
#include "common/log.h"
#include "common/manifest.h"
#include "posta_version.h"
#include "supervisor/status_command.h"
#include "supervisor/supervisor.h"
#include "supervisor/systemd.h"

#include <CLI/CLI.hpp>
#include <cstdio>

using namespace posta;

namespace {

constexpr char const* default_manifest = "/etc/posta/identities.toml";

int run_check(std::string const& manifest_path, std::string const& config_path, std::string const& acl_path)
{
    size_t errors = 0;
    auto print = [&](Diagnostics const& diagnostics) {
        for (auto const& d : diagnostics) {
            std::fprintf(stderr, "%s\n", d.text().c_str());
            ++errors;
        }
    };
    auto manifest = load_manifest(manifest_path);
    print(manifest.errors);
    print(load_config(config_path).errors);
    print(load_acl(acl_path).errors);
    if (errors > 0) {
        std::fprintf(stderr, "check: %zu error%s\n", errors, errors == 1 ? "" : "s");
        return 1;
    }
    std::printf("%s: ok, %zu identit%s\n", manifest_path.c_str(), manifest.value.identities.size(),
        manifest.value.identities.size() == 1 ? "y" : "ies");
    return 0;
}

int run_serve(ServeOptions options)
{
    log::set_role("supervisor");
    auto supervisor = Supervisor::create(std::move(options));
    if (!supervisor) {
        // Config and manifest errors come one per line, each with file:line.
        std::fprintf(stderr, "posta-server: cannot start: %s\n", supervisor.error().text().c_str());
        return 1;
    }
    return supervisor.value()->run();
}

}

int main(int argc, char** argv)
{
    // Before anything opens a file: the fds systemd passed are 3 and up.
    auto activated = systemd::take_listen_fds();

    CLI::App app { "posta-server: hosts many posta identities on one machine" };
    app.set_version_flag("--version", std::string("posta-server ") + POSTA_VERSION);
    app.require_subcommand(1);

    ServeOptions serve;
    serve.listen = { "127.0.0.1:8080" };
    serve.manifest_path = default_manifest;
    auto* serve_cmd = app.add_subcommand("serve", "Run the supervisor and one worker per identity");
    serve_cmd->add_option("--listen", serve.listen, "Address to listen on, repeatable: 127.0.0.1:8080, [::1]:8080")
        ->capture_default_str();
    serve_cmd->add_option("--manifest", serve.manifest_path, "The identities manifest (TOML)")->capture_default_str();
    serve_cmd->add_option("--acl", serve.acl_path, "Sender allow/deny list (TOML)")->check(CLI::ExistingFile);
    serve_cmd->add_option("--rate-per-minute", serve.rate_per_minute,
                 "Deliveries accepted per minute per sender and per client address; 0 = no limit")
        ->capture_default_str()
        ->check(CLI::Range(0u, 1000000u));
    serve_cmd->add_option("--config", serve.config_path, "Daemon settings (TOML)")->check(CLI::ExistingFile);

    std::string check_manifest = default_manifest;
    std::string check_config;
    std::string check_acl;
    auto* check_cmd = app.add_subcommand("check", "Validate the manifest, config and ACL; print every error");
    check_cmd->add_option("--manifest", check_manifest, "The identities manifest (TOML)")->capture_default_str();
    check_cmd->add_option("--config", check_config, "Daemon settings (TOML)");
    check_cmd->add_option("--acl", check_acl, "Sender allow/deny list (TOML)");

    std::string status_config;
    bool status_json = false;
    auto* status_cmd = app.add_subcommand("status", "Show each identity's worker, from the running daemon");
    status_cmd->add_option("--config", status_config, "Daemon settings (TOML), for the control socket's path");
    status_cmd->add_option("--manifest", check_manifest, "Accepted for symmetry with the other commands");
    status_cmd->add_flag("--json", status_json, "Print the daemon's answer as JSON");

    CLI11_PARSE(app, argc, argv);

    serve.activated = std::move(activated);
    if (check_cmd->parsed())
        return run_check(check_manifest, check_config, check_acl);
    if (status_cmd->parsed()) {
        auto config = load_config(status_config);
        if (!config.ok()) {
            for (auto const& d : config.errors)
                std::fprintf(stderr, "%s\n", d.text().c_str());
            return 1;
        }
        return run_status_command(config.value.control_socket, status_json);
    }
    return run_serve(std::move(serve));
}
