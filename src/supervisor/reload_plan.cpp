#include "reload_plan.h"

#include <algorithm>

namespace posta {

namespace {

bool same_ranges(std::vector<AddressRange> const& a, std::vector<AddressRange> const& b)
{
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
        [](AddressRange const& x, AddressRange const& y) { return x.network == y.network && x.prefix == y.prefix; });
}

}

ConfigReload plan_config_reload(Config const& running, Config const& loaded)
{
    ConfigReload out { running, {} };
    out.config.head_timeout = loaded.head_timeout;
    out.config.body_timeout = loaded.body_timeout;
    out.config.max_head_bytes = loaded.max_head_bytes;
    out.config.max_connections_per_address = loaded.max_connections_per_address;
    out.config.log_level = loaded.log_level;
    out.config.log_format = loaded.log_format;
    out.config.trusted_proxies = loaded.trusted_proxies;

    auto check = [&](char const* key, bool same) {
        if (!same)
            out.needs_restart.emplace_back(key);
    };
    check("state_dir", running.state_dir == loaded.state_dir);
    check("control_socket", running.control_socket == loaded.control_socket);
    check("metrics_listen", running.metrics_listen == loaded.metrics_listen);
    check("shutdown_timeout", running.shutdown_timeout == loaded.shutdown_timeout);
    check("max_body_bytes", running.max_body_bytes == loaded.max_body_bytes);
    check("max_page_bytes", running.max_page_bytes == loaded.max_page_bytes);
    check("max_pending", running.max_pending == loaded.max_pending);
    check("worker_open_files", running.worker_open_files == loaded.worker_open_files);
    check("delivery_retry_base", running.delivery_retry_base == loaded.delivery_retry_base);
    check("delivery_retry_max", running.delivery_retry_max == loaded.delivery_retry_max);
    check("delivery_give_up", running.delivery_give_up == loaded.delivery_give_up);
    check("sandbox", running.sandbox == loaded.sandbox);
    check("outbound_allow", same_ranges(running.outbound_allow, loaded.outbound_allow));
    check("outbound_ca_file", running.outbound_ca_file == loaded.outbound_ca_file);
    return out;
}

ManifestDiff diff_manifests(Manifest const& running, Manifest const& loaded)
{
    ManifestDiff out;
    for (auto const& entry : loaded.identities) {
        IdentityEntry const* now = running.find_slug(entry.slug);
        if (!now)
            out.added.push_back(entry.slug);
        else if (now->same_as(entry))
            out.kept.push_back(entry.slug);
        else
            out.changed.push_back(entry.slug);
    }
    for (auto const& entry : running.identities)
        if (!loaded.find_slug(entry.slug))
            out.removed.push_back(entry.slug);
    return out;
}

}
