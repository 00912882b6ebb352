// posta-server: the command line. `serve` runs the supervisor (which spawns
// the workers: this binary again, in an internal mode, ipc/worker_start.h); `check` validates the operator's files without serving;
// `token` issues an owner API token for one identity, `login` a one-time
// sign-in link for its web app; `backup` and `restore` copy one identity out
// of and into the state folder.
#include "config/acl.h"
#include "common/address.h"
#include "config/config.h"
#include "common/host_key.h"
#include "common/log.h"
#include "config/manifest.h"
#include "common/process_title.h"
#include "ipc/worker_start.h"
#include "posta_version.h"
#include "cli/backup_command.h"
#include "cli/status_command.h"
#include "cli/mint_command.h"
#include "supervisor/listener.h"
#include "supervisor/supervisor.h"
#include "supervisor/systemd.h"
#include "worker/tls_certificate.h"
#include "worker/worker_template.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <optional>
#include <cstdio>
#include <unistd.h>

using namespace posta;

namespace {

constexpr char const* default_manifest = "/etc/posta/identities.toml";

// The port of a --listen value; nullopt for one serve would refuse anyway.
std::optional<uint16_t> listen_port(std::string_view text)
{
    auto listen = parse_listen_address(text);
    if (!listen)
        return std::nullopt;
    auto const& storage = listen->address.storage;
    if (storage.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<sockaddr_in6 const*>(&storage)->sin6_port);
    return ntohs(reinterpret_cast<sockaddr_in const*>(&storage)->sin_port);
}

// Warns, on stderr, of each identity whose URL's port no listener has: its
// clients cannot reach it unless a front forwards that port, and with no
// trusted proxy configured none is expected. A warning, not an error: the
// port may be forwarded by a NAT rule check cannot see.
void warn_unreachable_ports(Manifest const& manifest, Config const& config, std::vector<std::string> const& listen)
{
    if (!config.trusted_proxies.empty())
        return;
    std::vector<uint16_t> ports;
    for (auto const& text : listen) {
        if (auto port = listen_port(text))
            ports.push_back(*port);
    }
    for (auto const& identity : manifest.identities) {
        auto url = parse_identity_url(identity.url);
        if (!url || std::find(ports.begin(), ports.end(), url->port) != ports.end())
            continue;
        std::string listening;
        for (auto port : ports)
            listening += (listening.empty() ? "" : ", ") + std::to_string(port);
        std::fprintf(stderr, "warning: %s: its URL %s has port %u, but the listeners have %s and no trusted_proxies "
            "is set; listen on port %u (--listen), or set trusted_proxies for the front that forwards it\n",
            identity.slug.c_str(), identity.url.c_str(), static_cast<unsigned>(url->port),
            listening.empty() ? "no port" : ("port " + listening).c_str(), static_cast<unsigned>(url->port));
    }
}

int run_check(std::string const& manifest_path, std::string const& config_path, std::string const& acl_path,
    std::vector<std::string> const& listen)
{
    size_t errors = 0;
    auto print = [&](Diagnostics const& diagnostics) {
        for (auto const& d : diagnostics) {
            std::fprintf(stderr, "%s\n", d.text().c_str());
            ++errors;
        }
    };
    auto manifest = load_manifest(manifest_path);
    auto config = load_config(config_path);
    print(manifest.errors);
    print(config.errors);
    print(load_acl(acl_path).errors);
    if (errors > 0) {
        std::fprintf(stderr, "check: %zu error%s\n", errors, errors == 1 ? "" : "s");
        return 1;
    }
    // A missing or broken certificate is a warning, not an error: the
    // daemon serves everything else, and this identity's plain HTTP.
    std::string const& state_dir = config.value.state_dir;
    for (auto const& identity : manifest.value.identities) {
        auto url = parse_identity_url(identity.url);
        if (!url || url->scheme != "https")
            continue;
        if (auto loaded = load_tls_context(state_dir + "/" + identity.slug, url->host_key); !loaded)
            std::fprintf(stderr, "warning: %s: no usable TLS certificate: %s\n", identity.slug.c_str(),
                loaded.error().text().c_str());
    }
    warn_unreachable_ports(manifest.value, config.value, listen);
    std::printf("%s: ok, %zu identit%s\n", manifest_path.c_str(), manifest.value.identities.size(),
        manifest.value.identities.size() == 1 ? "y" : "ies");
    return 0;
}

int run_serve(ServeOptions options)
{
    log::set_role("supervisor");
    set_process_title("posta-server: supervisor", "posta-server");
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
    init_process_title(argc, argv);
    // The worker template spawned by the supervisor; nothing else takes
    // this path.
    if (argc == 2 && std::string_view(argv[1]) == template_mode_arg)
        return run_worker_template();

    // Before anything opens a file: the fds systemd passed are 3 and up.
    auto activated = systemd::take_listen_fds();

    CLI::App app { "posta-server: hosts many posta identities on one machine" };
    app.set_version_flag("--version", std::string("posta-server ") + POSTA_VERSION);
    app.require_subcommand(1);

    ServeOptions serve;
    serve.listen = { "127.0.0.1:8080" };
    serve.manifest_path = default_manifest;
    auto* serve_cmd = app.add_subcommand("serve", "Run the supervisor and one worker per identity");
    serve_cmd->add_option("--listen", serve.listen, 
                             "Address to listen on, repeatable: 127.0.0.1:8080, [::1]:8080; https://ADDR:PORT is TLS")
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
    std::vector<std::string> check_listen = serve.listen;
    auto* check_cmd = app.add_subcommand("check", "Validate the manifest, config and ACL; print every error");
    check_cmd->add_option("--manifest", check_manifest, "The identities manifest (TOML)")->capture_default_str();
    check_cmd->add_option("--config", check_config, "Daemon settings (TOML)");
    check_cmd->add_option("--acl", check_acl, "Sender allow/deny list (TOML)");
    check_cmd->add_option("--listen", check_listen, "The listeners serve will have, to check each identity's port")
        ->capture_default_str();

    std::string status_config;
    bool status_json = false;
    auto* status_cmd = app.add_subcommand("status", "Show each identity's worker, from the running daemon");
    status_cmd->add_option("--config", status_config, "Daemon settings (TOML), for the control socket's path");
    status_cmd->add_option("--manifest", check_manifest, "Accepted for symmetry with the other commands");
    status_cmd->add_flag("--json", status_json, "Print the daemon's answer as JSON");

    // token and login: one identity's owner secret, minted by its worker.
    std::string mint_slug;
    std::string mint_manifest = default_manifest;
    std::string mint_config;
    auto* token_cmd = app.add_subcommand("token",
        "Issue an owner API token for one identity; prints it once, stores only its hash");
    auto* login_cmd = app.add_subcommand("login",
        "Print a one-time sign-in link for one identity's web app, valid 10 minutes");
    for (auto* cmd : { token_cmd, login_cmd }) {
        cmd->add_option("slug", mint_slug, "The identity's slug, as in the manifest")->required();
        cmd->add_option("--manifest", mint_manifest, "The identities manifest (TOML)")->capture_default_str();
        cmd->add_option("--config", mint_config, "Daemon settings (TOML), for state_dir");
    }
    std::string copy_slug;
    std::string copy_dir;
    std::string copy_config;
    auto* backup_cmd = app.add_subcommand("backup",
        "Copy one identity's keys.json and inbox.db into DIR, consistently, while it may be served");
    auto* restore_cmd = app.add_subcommand("restore",
        "Copy a backup in DIR into the state folder of an identity the daemon does not serve");
    for (auto* cmd : { backup_cmd, restore_cmd }) {
        cmd->add_option("slug", copy_slug, "The identity's slug")->required();
        cmd->add_option("dir", copy_dir, "The backup's folder")->required();
        cmd->add_option("--config", copy_config, "Daemon settings (TOML), for state_dir and control_socket");
    }

    CLI11_PARSE(app, argc, argv);

    serve.activated = std::move(activated);
    if (check_cmd->parsed())
        return run_check(check_manifest, check_config, check_acl, check_listen);
    if (backup_cmd->parsed())
        return run_backup_command(copy_slug, copy_dir, copy_config);
    if (restore_cmd->parsed())
        return run_restore_command(copy_slug, copy_dir, copy_config);
    if (token_cmd->parsed())
        return run_mint_command(MintKind::ApiToken, mint_slug, mint_manifest, mint_config);
    if (login_cmd->parsed())
        return run_mint_command(MintKind::LoginLink, mint_slug, mint_manifest, mint_config);
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
