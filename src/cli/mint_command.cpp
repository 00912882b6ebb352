#include "mint_command.h"

#include "cli/control_client.h"
#include "config/config.h"
#include "common/log.h"
#include "config/manifest.h"
#include "supervisor/control_request.h"
#include "worker/identity_dir.h"
#include "worker/mint.h"
#include "worker/store.h"

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace posta {

namespace {

// Longer than the supervisor's own bound on a worker's answer (10 s,
// worker_process.cpp), which then answers with an error.
constexpr std::chrono::milliseconds answer_timeout { 15000 };

// Files the command would write must belong to us: a secret issued as root
// into a folder of the daemon's user would leave root-owned -wal and -shm
// files that the worker can no longer open.
Result<void> check_owner(std::string const& command, std::string const& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0) {
        if (errno == ENOENT)
            return {};
        return Error::from_errno("stat", path);
    }
    if (st.st_uid == ::geteuid())
        return {};
    passwd const* owner = ::getpwuid(st.st_uid);
    if (!owner)
        // systemd's DynamicUser: the user exists only while the service runs.
        return Error::message(command, "belongs to uid " + std::to_string(st.st_uid)
                + ", which has no user now (systemd's DynamicUser?); fix: start the daemon and run this "
                  "again as root",
            path);
    std::string name = owner->pw_name;
    return Error::message(command, "belongs to " + name + ", not to this user; fix: start the daemon and run "
            "this again, or run it as " + name + " (sudo -u " + name + " posta-server " + command + " ...)",
        path);
}

struct OpenedIdentity {
    IdentityEntry identity;
    Store store;
};

// No daemon: the command writes the identity's inbox.db itself. Finds `slug`
// in the manifest and opens its Store, creating the identity's folder and
// inbox.db as the worker would when it has never run, after checking that
// the files are this user's. Safe against a worker starting meanwhile (WAL
// and busy_timeout arbitrate). Never touches keys.json. Errors are printed
// ("posta-server <command>: ...") and give nullopt.
std::optional<OpenedIdentity> open_identity_store(std::string const& command, std::string const& slug,
    std::string const& manifest_path, Config const& config)
{
    auto manifest = load_manifest(manifest_path);
    if (!manifest.ok()) {
        for (auto const& d : manifest.errors)
            std::fprintf(stderr, "%s\n", d.text().c_str());
        return std::nullopt;
    }
    IdentityEntry const* identity = manifest.value.find_slug(slug);
    if (!identity) {
        std::string known;
        for (auto const& entry : manifest.value.identities)
            known += (known.empty() ? "" : ", ") + entry.slug;
        std::fprintf(stderr, "posta-server %s: %s has no identity \"%s\"; known slugs: %s\n", command.c_str(),
            manifest_path.c_str(), slug.c_str(), known.empty() ? "(none)" : known.c_str());
        return std::nullopt;
    }
    if (sodium_init() < 0) {
        std::fprintf(stderr, "posta-server %s: sodium_init failed (libsodium could not initialise its random source)\n",
            command.c_str());
        return std::nullopt;
    }
    auto fail = [&](Error const& error) {
        std::fprintf(stderr, "posta-server %s: %s\n", command.c_str(), error.text().c_str());
        return std::nullopt;
    };
    std::string dir_path = config.state_dir + "/" + identity->slug;
    for (auto const& path : { config.state_dir, dir_path, dir_path + "/inbox.db" }) {
        if (auto owned = check_owner(command, path); !owned)
            return fail(owned.error());
    }
    auto dir = prepare_identity_dir(config.state_dir, identity->slug);
    if (!dir)
        return fail(dir.error());
    auto store = Store::open(dir.value());
    if (!store)
        return fail(store.error());
    return OpenedIdentity { *identity, std::move(store.value()) };
}

// Prints `line`, a secret, alone on stdout; the caller wipes it.
int print_secret_line(std::string_view line)
{
    std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
    std::fflush(stdout);
    return 0;
}

char const* command_of(MintKind kind) { return kind == MintKind::ApiToken ? "token" : "login"; }

int mint_offline(MintKind kind, std::string const& slug, std::string const& manifest_path, Config const& config)
{
    char const* command = command_of(kind);
    auto opened = open_identity_store(command, slug, manifest_path, config);
    if (!opened)
        return 1;
    auto secret = mint_secret(opened->store, kind, opened->identity.url);
    if (!secret) {
        std::fprintf(stderr, "posta-server %s: %s\n", command, secret.error().text().c_str());
        return 1;
    }
    print_secret_line(secret.value());
    sodium_memzero(secret->data(), secret->size());
    return 0;
}

Result<Config> load_command_config(char const* command, std::string const& config_path)
{
    log::set_role(command);
    auto config = load_config(config_path);
    if (!config.ok()) {
        for (auto const& d : config.errors)
            std::fprintf(stderr, "%s\n", d.text().c_str());
        return Error::message("config", "invalid");
    }
    log::configure(config.value.log_level, config.value.log_format);
    return config.value;
}

// Prints what the daemon answered: the secret, or its error.
int print_answer(char const* command, std::string& answer, std::string const& socket_path)
{
    int rc = 0;
    if (auto secret = read_secret_answer(answer)) {
        print_secret_line(*secret);
    } else {
        auto doc = nlohmann::json::parse(answer, nullptr, false);
        if (doc.is_object() && doc["error"].is_string())
            std::fprintf(stderr, "posta-server %s: %s\n", command, doc["error"].get<std::string>().c_str());
        else
            std::fprintf(stderr, "posta-server %s: unreadable answer on %s\n", command, socket_path.c_str());
        rc = 1;
    }
    ::explicit_bzero(answer.data(), answer.size());
    return rc;
}

}

int run_mint_command(MintKind kind, std::string const& slug, std::string const& manifest_path,
    std::string const& config_path)
{
    char const* command = command_of(kind);
    auto config = load_command_config(command, config_path);
    if (!config)
        return 1;
    // A slug the daemon could not be asked about is reported against the
    // manifest, with the known ones.
    if (!valid_slug(slug))
        return mint_offline(kind, slug, manifest_path, config.value());
    std::string const& socket_path = config->control_socket;
    auto answer = ask_daemon(socket_path, std::string(command) + " " + slug, answer_timeout);
    if (answer)
        return print_answer(command, answer.value(), socket_path);
    if (!no_daemon(answer.error())) {
        std::fprintf(stderr, "posta-server %s: cannot ask the daemon: %s (run this as root or as the daemon's user)\n",
            command, answer.error().text().c_str());
        return 1;
    }
    return mint_offline(kind, slug, manifest_path, config.value());
}

}
