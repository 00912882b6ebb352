// Config file parsing: each key of ARCHITECTURE.md "Config file" is one entry
// of k_keys below, which names its field, says whether SIGHUP applies it, and
// reads it with a handler that checks its type and range and reports the fix
// with the key's line. Every error is collected; toml++'s parse_error is
// caught here and never leaves this file.
#include "config.h"

#include "common/address.h"
#include "ipc/channel.h"
#include "common/result.h"
#include "config/toml_file.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <sys/un.h>

namespace posta {

namespace {

// sun_path holds the path and its terminating NUL.
constexpr size_t k_max_socket_path = sizeof(sockaddr_un::sun_path) - 1;


class ConfigReader : public toml_file::Reader<Config> {
public:
    static std::vector<ConfigField> fields();

    using Reader::Reader;

    void read_root(toml::table const& root);

private:
    struct Key;
    // Reads `node` into the key's field, or reports why it cannot.
    using Handler = void (ConfigReader::*)(Key const&, toml::node const&);
    struct Key {
        ConfigField field;
        Handler handler;
        // The bounds of a number, or the longest path.
        int64_t min = 0;
        int64_t max = INT64_MAX;
    };
    static Key const k_keys[];

    template<typename T> T& target(Key const& key) { return m_out.value.*std::get<T Config::*>(key.field.member); }

    // Reports a wrong type; returns the string value or nullptr.
    std::string const* expect_string(std::string_view key, toml::node const& node, std::string_view example)
    {
        if (auto const* value = node.as_string())
            return &value->get();
        error(node, std::string(key) + " is " + toml_file::type_name(node) + "; it must be a string, like " + std::string(key)
                + " = " + std::string(example));
        return nullptr;
    }

    void path(Key const& key, toml::node const& node)
    {
        std::string_view name = key.field.key;
        std::string const* value = expect_string(name, node, "\"/path\"");
        if (!value)
            return;
        if (value->empty()) {
            error(node, std::string(name) + " is empty; give a path, or remove the line for the default");
            return;
        }
        if (value->find('\0') != std::string::npos) {
            error(node, std::string(name) + " contains a NUL character; remove it");
            return;
        }
        if (value->size() > static_cast<uint64_t>(key.max)) {
            error(node, std::string(name) + " is " + std::to_string(value->size()) + " bytes long; a Unix socket path may have at most "
                    + std::to_string(key.max) + ", so choose a shorter one");
            return;
        }
        target<std::string>(key) = *value;
    }

    void socket_address(Key const& key, toml::node const& node)
    {
        std::string_view name = key.field.key;
        std::string const* value = expect_string(name, node, "\"127.0.0.1:9187\"");
        if (!value)
            return;
        auto address = parse_socket_address(*value);
        if (!address) {
            error(node, std::string(name) + " = \"" + *value + "\" " + address.error().detail
                    + " (like \"127.0.0.1:9187\"); or remove the line to serve no metrics");
            return;
        }
        target<std::string>(key) = *value;
    }

    void duration(Key const& key, toml::node const& node)
    {
        std::string_view name = key.field.key;
        if (node.is_integer() || node.is_floating_point()) {
            error(node, std::string(name) + " is a bare number; write a duration string with its unit, like " + std::string(name)
                    + " = \"10s\"");
            return;
        }
        std::string const* value = expect_string(name, node, "\"10s\"");
        if (!value)
            return;
        if (auto parsed = parse_duration(*value)) {
            target<Duration>(key) = *parsed;
            return;
        }
        error(node, std::string(name) + " = \"" + *value + "\" is not a duration; write a positive whole number and a unit: "
                + "\"250ms\", \"10s\", \"5m\", \"6h\" or \"3d\"");
    }

    void size(Key const& key, toml::node const& node)
    {
        std::string_view name = key.field.key;
        auto const* value = node.as_integer();
        if (!value) {
            error(node, std::string(name) + " is " + toml_file::type_name(node) + "; it must be a whole number without quotes, like "
                    + std::string(name) + " = " + std::to_string(key.min));
            return;
        }
        int64_t n = value->get();
        if (n < key.min || n > key.max) {
            error(node, std::string(name) + " = " + std::to_string(n) + " is out of range; use a number from "
                    + std::to_string(key.min) + " to " + std::to_string(key.max));
            return;
        }
        target<size_t>(key) = static_cast<size_t>(n);
    }

    // A log setting by name: `parse` reads it; `what` it is and the
    // `choices` it has go into the message when it is none of them.
    template<typename Enum>
    void named(Key const& key, toml::node const& node, Result<Enum> (*parse)(std::string_view), std::string_view example,
        std::string_view what, std::string_view choices)
    {
        std::string const* value = expect_string(key.field.key, node, example);
        if (!value)
            return;
        if (auto parsed = parse(*value))
            target<Enum>(key) = *parsed;
        else
            error(node, std::string(key.field.key) + " = \"" + *value + "\" is not " + std::string(what) + "; use " + std::string(choices));
    }

    void level(Key const& key, toml::node const& node) { named(key, node, log::parse_level, "\"info\"", "a level", "debug, info, warn or error"); }
    void format(Key const& key, toml::node const& node) { named(key, node, log::parse_format, "\"text\"", "a format", "text or json"); }

    void boolean(Key const& key, toml::node const& node)
    {
        auto const* value = node.as_boolean();
        if (!value) {
            error(node, std::string(key.field.key) + " is " + toml_file::type_name(node) + "; it must be true or false without quotes");
            return;
        }
        target<bool>(key) = value->get();
    }

    // A list of networks, "127.0.0.0/8" or one address each.
    void ranges(Key const& key, toml::node const& node)
    {
        std::string name(key.field.key);
        auto const* array = node.as_array();
        if (!array) {
            error(node, name + " is " + toml_file::type_name(node) + "; it must be a list of networks, like " + name
                    + " = [\"127.0.0.0/8\", \"::1/128\"]");
            return;
        }
        std::vector<AddressRange> parsed;
        for (toml::node const& element : *array) {
            std::string const* value = expect_string(name + " entry", element, "\"127.0.0.0/8\"");
            if (!value)
                continue;
            auto range = parse_address_range(*value);
            if (!range) {
                error(element, name + " entry \"" + *value + "\" " + range.error().detail);
                continue;
            }
            parsed.push_back(std::move(range.value()));
        }
        target<std::vector<AddressRange>>(key) = std::move(parsed);
    }

    // A base above the cap would make the first retry wait longer than any
    // later one; that is a mistake in the file, not a schedule. Checked only
    // when both values are known: a bad one is reported on its own already.
    void check_retry_schedule()
    {
        Config const& config = m_out.value;
        if (m_failed.contains("delivery_retry_base") || m_failed.contains("delivery_retry_max")
            || config.delivery_retry_base <= config.delivery_retry_max)
            return;
        auto line = m_lines.find("delivery_retry_base");
        if (line == m_lines.end())
            line = m_lines.find("delivery_retry_max");
        error(line == m_lines.end() ? 0 : line->second,
            "delivery_retry_base (" + format_duration(config.delivery_retry_base) + ") is longer than delivery_retry_max ("
                + format_duration(config.delivery_retry_max) + "); make the base at most the maximum");
    }

    // The line of each key the file sets, and the keys it sets wrongly.
    std::map<std::string_view, int> m_lines;
    std::set<std::string_view> m_failed;
};

constexpr auto applied = OnReload::Applied;
constexpr auto restart = OnReload::NeedsRestart;

// Every key, in the order of posta-server(8).
ConfigReader::Key const ConfigReader::k_keys[] = {
    { { "state_dir", &Config::state_dir, restart }, &ConfigReader::path },
    { { "control_socket", &Config::control_socket, restart }, &ConfigReader::path, 0, k_max_socket_path },
    { { "metrics_listen", &Config::metrics_listen, restart }, &ConfigReader::socket_address },
    { { "head_timeout", &Config::head_timeout, applied }, &ConfigReader::duration },
    { { "body_timeout", &Config::body_timeout, applied }, &ConfigReader::duration },
    { { "shutdown_timeout", &Config::shutdown_timeout, restart }, &ConfigReader::duration },
    // A head the supervisor read off a slow client travels to the worker in
    // one channel message, so the bound is the channel's.
    { { "max_head_bytes", &Config::max_head_bytes, applied }, &ConfigReader::size, 1024, max_channel_prefix },
    { { "max_body_bytes", &Config::max_body_bytes, restart }, &ConfigReader::size, 1024, 1024 * 1024 * 1024 },
    { { "max_page_bytes", &Config::max_page_bytes, restart }, &ConfigReader::size, 65536, 1024 * 1024 * 1024 },
    { { "max_pending", &Config::max_pending, restart }, &ConfigReader::size, 1, 65536 },
    { { "worker_open_files", &Config::worker_open_files, restart }, &ConfigReader::size, 64, 1048576 },
    { { "max_connections_per_address", &Config::max_connections_per_address, applied }, &ConfigReader::size, 1, 1048576 },
    { { "delivery_retry_base", &Config::delivery_retry_base, restart }, &ConfigReader::duration },
    { { "delivery_retry_max", &Config::delivery_retry_max, restart }, &ConfigReader::duration },
    { { "delivery_give_up", &Config::delivery_give_up, restart }, &ConfigReader::duration },
    { { "log_level", &Config::log_level, applied }, &ConfigReader::level },
    { { "log_format", &Config::log_format, applied }, &ConfigReader::format },
    { { "sandbox", &Config::sandbox, restart }, &ConfigReader::boolean },
    { { "outbound_allow", &Config::outbound_allow, restart }, &ConfigReader::ranges },
    { { "outbound_ca_file", &Config::outbound_ca_file, restart }, &ConfigReader::path },
    { { "trusted_proxies", &Config::trusted_proxies, applied }, &ConfigReader::ranges },
};

// A tripwire for whoever adds a Config field: add it to k_keys (and to the
// tests of each list that goes by config_fields()), then update the size.
static_assert(sizeof(Config) == 4 * sizeof(std::string) + 12 * 8 + 2 * sizeof(int) + 8
            + 2 * sizeof(std::vector<AddressRange>),
    "Config changed: give the new field its key in k_keys");

std::vector<ConfigField> ConfigReader::fields()
{
    std::vector<ConfigField> out;
    for (Key const& key : k_keys)
        out.push_back(key.field);
    return out;
}

void ConfigReader::read_root(toml::table const& root)
{
    for (auto&& [name, node] : root) {
        std::string_view key_name = name.str(); // a structured binding cannot be captured before C++23
        auto known = std::find_if(std::begin(k_keys), std::end(k_keys), [&](Key const& key) { return key.field.key == key_name; });
        if (known == std::end(k_keys)) {
            std::string names;
            for (Key const& key : k_keys)
                names += (names.empty() ? "" : ", ") + std::string(key.field.key);
            error(toml_file::line_of(name.source()), "unknown key \"" + std::string(name.str()) + "\"; the config keys are " + names
                    + " (see posta-server(8))");
            continue;
        }
        size_t errors = m_out.errors.size();
        (this->*known->handler)(*known, node);
        if (m_out.errors.size() == errors)
            m_lines[known->field.key] = toml_file::line_of(name.source());
        else
            m_failed.insert(known->field.key);
    }
    check_retry_schedule();
}

}

std::vector<ConfigField> const& config_fields()
{
    static std::vector<ConfigField> const fields = ConfigReader::fields();
    return fields;
}

// Contract: never throws (toml++'s parse_error is caught here); keys that are
// absent keep their defaults; returns every error found.
Parsed<Config> parse_config(std::string_view text, std::string const& file)
{
    return toml_file::parse_with<Config, ConfigReader>(text, file);
}

Parsed<Config> load_config(std::string const& path)
{
    return path.empty() ? Parsed<Config> {} : toml_file::load<Config>(path, "config", "--config", parse_config);
}

}
