// Reload planning: the pure part of `Supervisor::reload`. Given what runs and
// what was just read, it says which config values take effect now, which
// keys need a restart of the daemon, and which identities are kept, added,
// changed or removed. No process, socket or loop is touched here.
#pragma once

#include "config/config.h"
#include "config/manifest.h"

#include <string>
#include <vector>

namespace posta {

// The config keys SIGHUP applies at once: those the supervisor's intake
// (accepting, PROXY headers, peeking heads) and its log read, and the policy
// carries to every running worker (ipc/policy.h) for the connections it
// takes from then on. Every other key is fixed at start, because a worker's
// setup, a listener or the control socket was made from it; a changed value
// is reported as needing a restart. posta-server(8) lists both; every key of
// config_key_names() is in exactly one list (test_reload_plan.cpp).
inline constexpr char const* reloadable_config_keys[] = { "head_timeout", "body_timeout", "max_head_bytes",
    "max_connections_per_address", "log_level", "log_format", "trusted_proxies" };
inline constexpr char const* restart_config_keys[] = { "state_dir", "control_socket", "metrics_listen",
    "shutdown_timeout", "max_body_bytes", "max_page_bytes", "max_pending", "worker_open_files",
    "delivery_retry_base", "delivery_retry_max", "delivery_give_up", "sandbox", "outbound_allow",
    "outbound_ca_file" };

struct ConfigReload {
    Config config;                         // what runs from now on
    std::vector<std::string> needs_restart; // keys whose new value waits for a restart, in file order
};

// `running` is the config in force (the start values of every key that is not
// reloadable); `loaded` is the file just read. The result takes the
// reloadable keys from `loaded` and every other key from `running`, and
// names each key whose value differs between the two and is not reloadable.
ConfigReload plan_config_reload(Config const& running, Config const& loaded);

struct ManifestDiff {
    std::vector<std::string> kept;    // same slug, url and name: the worker carries over
    std::vector<std::string> added;   // a slug not running
    std::vector<std::string> changed; // same slug, new url or name: stop the old worker, start a new one
    std::vector<std::string> removed; // running, not in `loaded`
};

// Slugs in manifest order (`removed` in `running`'s order).
ManifestDiff diff_manifests(Manifest const& running, Manifest const& loaded);

}
