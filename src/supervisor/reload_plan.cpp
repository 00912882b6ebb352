#include "reload_plan.h"

#include <variant>

namespace posta {

ConfigReload plan_config_reload(Config const& running, Config const& loaded)
{
    ConfigReload out { running, {} };
    for (ConfigField const& field : config_fields()) {
        std::visit(
            [&](auto member) {
                if (field.on_reload == OnReload::Applied)
                    out.config.*member = loaded.*member;
                else if (!(running.*member == loaded.*member))
                    out.needs_restart.emplace_back(field.key);
            },
            field.member);
    }
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
