// The reload plan (supervisor/reload_plan.h), the pure part of SIGHUP: which
// config values a reload applies (and hands running workers in the policy),
// which keys wait for a restart, and which identities are kept, added,
// changed or removed.
#include "ipc/policy.h"
#include "ipc/worker_start.h"
#include "supervisor/reload_plan.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

using namespace posta;
using namespace std::chrono_literals;

namespace {

Config config_of(std::string const& text)
{
    auto parsed = parse_config(text, "posta.toml");
    REQUIRE_MESSAGE(parsed.ok(), (parsed.errors.empty() ? "" : parsed.errors[0].text()));
    return parsed.value;
}

// A value other than the default for each key the plan knows, as TOML.
std::map<std::string, std::string> const changed_values = {
    { "head_timeout", "\"3s\"" },
    { "body_timeout", "\"7s\"" },
    { "max_head_bytes", "2048" },
    { "max_connections_per_address", "3" },
    { "log_level", "\"debug\"" },
    { "log_format", "\"json\"" },
    { "trusted_proxies", "[\"127.0.0.1/32\"]" },
    { "state_dir", "\"elsewhere\"" },
    { "control_socket", "\"/tmp/posta-test-other.sock\"" },
    { "metrics_listen", "\"127.0.0.1:9187\"" },
    { "shutdown_timeout", "\"3s\"" },
    { "max_body_bytes", "4096" },
    { "max_page_bytes", "65536" },
    { "max_pending", "3" },
    { "worker_open_files", "999" },
    { "delivery_retry_base", "\"2s\"" },
    { "delivery_retry_max", "\"2h\"" },
    { "delivery_give_up", "\"9d\"" },
    { "sandbox", "false" },
    { "outbound_allow", "[\"127.0.0.0/8\"]" },
    { "outbound_ca_file", "\"/etc/posta/private-ca.pem\"" },
};

// The plan for a reload whose file changes `key` alone, from the defaults.
ConfigReload plan_changing(std::string const& key)
{
    REQUIRE(changed_values.contains(key));
    return plan_config_reload(config_of(""), config_of(key + " = " + changed_values.at(key) + "\n"));
}

std::vector<std::string> keys_that(OnReload on_reload)
{
    std::vector<std::string> out;
    for (ConfigField const& field : config_fields())
        if (field.on_reload == on_reload)
            out.emplace_back(field.key);
    return out;
}

// Every field of a config, through the one writer that carries them all.
std::string fields_of(Config const& config) { return WorkerStart { {}, config, {}, 0 }.serialize(); }

std::string policy_of(Config const& config)
{
    Policy policy;
    policy.take_config(config);
    return policy.serialize();
}

Manifest manifest_of(std::vector<std::pair<std::string, std::string>> const& slugs_and_names)
{
    Manifest out;
    for (auto const& [slug, name] : slugs_and_names)
        out.identities.push_back(IdentityEntry { slug, "http://" + slug + ".local:8080", name, slug + ".local", 0 });
    return out;
}

}

TEST_CASE("a reload applies the reloadable keys and names none as needing a restart")
{
    Config running = config_of("");
    Config loaded = config_of("head_timeout = \"3s\"\nmax_head_bytes = 2048\nlog_level = \"debug\"\n"
                              "log_format = \"json\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n");
    auto plan = plan_config_reload(running, loaded);
    CHECK(plan.needs_restart.empty());
    CHECK(plan.config.head_timeout == 3s);
    CHECK(plan.config.max_head_bytes == 2048);
    CHECK(plan.config.log_level == loaded.log_level);
    CHECK(plan.config.log_format == loaded.log_format);
    REQUIRE(plan.config.trusted_proxies.size() == 1);
    CHECK(plan.config.trusted_proxies[0].text == "127.0.0.1/32");
}

TEST_CASE("each reloadable key changed alone needs no restart")
{
    for (auto const& key : keys_that(OnReload::Applied)) {
        CAPTURE(key);
        CHECK(plan_changing(key).needs_restart.empty());
    }
}

TEST_CASE("each key fixed at start, changed alone, is named as needing a restart and keeps its running value")
{
    Config running = config_of("");
    for (auto const& key : keys_that(OnReload::NeedsRestart)) {
        CAPTURE(key);
        auto plan = plan_changing(key);
        CHECK(plan.needs_restart == std::vector<std::string> { key });
        // What runs stays what started: compared through the keys a test can see.
        CHECK(plan.config.state_dir == running.state_dir);
        CHECK(plan.config.max_pending == running.max_pending);
        CHECK(plan.config.shutdown_timeout == running.shutdown_timeout);
        CHECK(plan.config.sandbox == running.sandbox);
    }
}

TEST_CASE("SIGHUP applies the keys the supervisor's intake, its log and the policy read, and no other")
{
    CHECK(keys_that(OnReload::Applied)
        == std::vector<std::string> { "head_timeout", "body_timeout", "max_head_bytes", "max_connections_per_address",
            "log_level", "log_format", "trusted_proxies" });
}

TEST_CASE("every config key is named once and changed by these tests")
{
    std::set<std::string> keys;
    for (ConfigField const& field : config_fields()) {
        CAPTURE(field.key);
        CHECK(keys.emplace(field.key).second);
        CHECK(changed_values.contains(std::string(field.key)));
    }
    CHECK(keys.size() == changed_values.size());
}

TEST_CASE("a reload applies each reloadable key whole, and hands it to running workers in the policy")
{
    Config running = config_of("");
    for (auto const& key : keys_that(OnReload::Applied)) {
        CAPTURE(key);
        Config loaded = config_of(key + " = " + changed_values.at(key) + "\n");
        REQUIRE(fields_of(loaded) != fields_of(running));
        auto plan = plan_config_reload(running, loaded);
        CHECK(fields_of(plan.config) == fields_of(loaded));
        CHECK(policy_of(plan.config) != policy_of(running));
    }
}

TEST_CASE("keys that need a restart are named in the order of the plan, and a reload to the running file names none")
{
    Config running = config_of("max_pending = 3\n");
    auto same = plan_config_reload(running, config_of("max_pending = 3\n"));
    CHECK(same.needs_restart.empty());
    auto plan = plan_config_reload(running, config_of("sandbox = false\nstate_dir = \"elsewhere\"\nmax_pending = 4\n"));
    CHECK(plan.needs_restart == std::vector<std::string> { "state_dir", "max_pending", "sandbox" });
    CHECK(plan.config.max_pending == 3);
}

TEST_CASE("a manifest diff tells kept, added, changed and removed identities apart, in manifest order")
{
    Manifest running = manifest_of({ { "arne", "Arne" }, { "bea", "Bea" }, { "cleo", "Cleo" }, { "dag", "Dag" } });
    Manifest loaded = manifest_of({ { "eva", "Eva" }, { "dag", "Dag" }, { "bea", "Bea B." }, { "arne", "Arne" } });
    auto diff = diff_manifests(running, loaded);
    CHECK(diff.kept == std::vector<std::string> { "dag", "arne" });
    CHECK(diff.added == std::vector<std::string> { "eva" });
    CHECK(diff.changed == std::vector<std::string> { "bea" });
    CHECK(diff.removed == std::vector<std::string> { "cleo" });
}

TEST_CASE("an identity whose URL changes is changed, not kept")
{
    Manifest running = manifest_of({ { "arne", "Arne" } });
    Manifest loaded = running;
    loaded.identities[0].url = "https://arne.local";
    auto diff = diff_manifests(running, loaded);
    CHECK(diff.kept.empty());
    CHECK(diff.changed == std::vector<std::string> { "arne" });
}

TEST_CASE("the same manifest again keeps every identity")
{
    Manifest running = manifest_of({ { "arne", "Arne" }, { "bea", "Bea" } });
    auto diff = diff_manifests(running, running);
    CHECK(diff.kept == std::vector<std::string> { "arne", "bea" });
    CHECK(diff.added.empty());
    CHECK(diff.changed.empty());
    CHECK(diff.removed.empty());
}
