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

struct ConfigReload {
    Config config;                         // what runs from now on
    std::vector<std::string> needs_restart; // keys whose new value waits for a restart, in config_fields() order
};

// `running` is the config in force (the start values of every key that is not
// reloadable); `loaded` is the file just read. The result takes the keys
// SIGHUP applies (OnReload::Applied, config/config.h: those the supervisor's
// intake and log read, and the policy carries to running workers) from
// `loaded` and every other key from `running`, and names each key whose value
// differs between the two and is not reloadable.
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
