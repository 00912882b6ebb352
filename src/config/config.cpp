// Config file parsing: each key of ARCHITECTURE.md "Config file" is read by
// one entry of k_keys below, which checks its type and range and reports the
// fix with the key's line. Every error is collected; toml++'s parse_error is
// caught here and never leaves this file.
#include "config.h"

#include "common/address.h"
#include "ipc/channel.h"
#include "common/result.h"
#include "config/toml_file.h"

#include <algorithm>
#include <cstdint>
#include <sys/un.h>

namespace posta {

namespace {

// sun_path holds the path and its terminating NUL.
constexpr size_t k_max_socket_path = sizeof(sockaddr_un::sun_path) - 1;


class ConfigReader {
public:
    static std::vector<std::string_view> key_names();

    ConfigReader(std::string const& file, Parsed<Config>& out)
        : m_file(file)
        , m_out(out)
    {
    }

    void read_root(toml::table const& root);

private:
    using Handler = void (ConfigReader::*)(std::string_view key, toml::node const&);
    struct Key {
        std::string_view name;
        Handler handler;
    };
    static Key const k_keys[];

    void error(int line, std::string message)
    {
        m_out.errors.push_back(Diagnostic { m_file, line, std::move(message) });
    }

    // Reports a wrong type; returns the string value or nullptr.
    std::string const* expect_string(std::string_view key, toml::node const& node, std::string_view example)
    {
        if (auto const* value = node.as_string())
            return &value->get();
        error(toml_file::line_of(node.source()), std::string(key) + " is " + toml_file::type_name(node) + "; it must be a string, like "
                + std::string(key) + " = " + std::string(example));
        return nullptr;
    }

    void read_path(std::string_view key, toml::node const& node, std::string& out, size_t max_length)
    {
        std::string const* value = expect_string(key, node, "\"/path\"");
        if (!value)
            return;
        int line = toml_file::line_of(node.source());
        if (value->empty()) {
            error(line, std::string(key) + " is empty; give a path, or remove the line for the default");
            return;
        }
        if (value->find('\0') != std::string::npos) {
            error(line, std::string(key) + " contains a NUL character; remove it");
            return;
        }
        if (value->size() > max_length) {
            error(line, std::string(key) + " is " + std::to_string(value->size()) + " bytes long; a Unix socket path may have at most "
                    + std::to_string(max_length) + ", so choose a shorter one");
            return;
        }
        out = *value;
    }

    // Returns whether `out` was set.
    bool read_duration(std::string_view key, toml::node const& node, Duration& out)
    {
        if (node.is_integer() || node.is_floating_point()) {
            error(toml_file::line_of(node.source()), std::string(key) + " is a bare number; write a duration string with its unit, like "
                    + std::string(key) + " = \"10s\"");
            return false;
        }
        std::string const* value = expect_string(key, node, "\"10s\"");
        if (!value)
            return false;
        if (auto parsed = parse_duration(*value)) {
            out = *parsed;
            return true;
        }
        error(toml_file::line_of(node.source()), std::string(key) + " = \"" + *value + "\" is not a duration; write a positive whole number and a unit: "
                + "\"250ms\", \"10s\", \"5m\", \"6h\" or \"3d\"");
        return false;
    }

    void read_size(std::string_view key, toml::node const& node, size_t& out, int64_t min, int64_t max)
    {
        auto const* value = node.as_integer();
        if (!value) {
            error(toml_file::line_of(node.source()), std::string(key) + " is " + toml_file::type_name(node) + "; it must be a whole number without quotes, like "
                    + std::string(key) + " = " + std::to_string(min));
            return;
        }
        int64_t n = value->get();
        if (n < min || n > max) {
            error(toml_file::line_of(node.source()), std::string(key) + " = " + std::to_string(n) + " is out of range; use a number from "
                    + std::to_string(min) + " to " + std::to_string(max));
            return;
        }
        out = static_cast<size_t>(n);
    }

    void state_dir(std::string_view key, toml::node const& node)
    {
        read_path(key, node, m_out.value.state_dir, SIZE_MAX);
    }
    void control_socket(std::string_view key, toml::node const& node)
    {
        read_path(key, node, m_out.value.control_socket, k_max_socket_path);
    }
    void metrics_listen(std::string_view key, toml::node const& node)
    {
        std::string const* value = expect_string(key, node, "\"127.0.0.1:9187\"");
        if (!value)
            return;
        auto address = parse_socket_address(*value);
        if (!address) {
            error(toml_file::line_of(node.source()), std::string(key) + " = \"" + *value + "\" " + address.error().detail
                    + " (like \"127.0.0.1:9187\"); or remove the line to serve no metrics");
            return;
        }
        m_out.value.metrics_listen = *value;
    }
    void head_timeout(std::string_view key, toml::node const& node)
    {
        read_duration(key, node, m_out.value.head_timeout);
    }
    void body_timeout(std::string_view key, toml::node const& node)
    {
        read_duration(key, node, m_out.value.body_timeout);
    }
    void shutdown_timeout(std::string_view key, toml::node const& node)
    {
        read_duration(key, node, m_out.value.shutdown_timeout);
    }
    void max_head_bytes(std::string_view key, toml::node const& node)
    {
        // A head the supervisor read off a slow client travels to the worker
        // in one channel message, so the bound is the channel's.
        read_size(key, node, m_out.value.max_head_bytes, 1024, static_cast<int64_t>(max_channel_prefix));
    }
    void max_body_bytes(std::string_view key, toml::node const& node)
    {
        read_size(key, node, m_out.value.max_body_bytes, 1024, 1024 * 1024 * 1024);
    }
    void max_page_bytes(std::string_view key, toml::node const& node)
    {
        read_size(key, node, m_out.value.max_page_bytes, 65536, 1024 * 1024 * 1024);
    }
    void max_pending(std::string_view key, toml::node const& node)
    {
        read_size(key, node, m_out.value.max_pending, 1, 65536);
    }
    void worker_open_files(std::string_view key, toml::node const& node)
    {
        read_size(key, node, m_out.value.worker_open_files, 64, 1048576);
    }
    void max_connections_per_address(std::string_view key, toml::node const& node)
    {
        read_size(key, node, m_out.value.max_connections_per_address, 1, 1048576);
    }
    void delivery_retry_base(std::string_view key, toml::node const& node)
    {
        if (read_duration(key, node, m_out.value.delivery_retry_base))
            m_retry_base_line = toml_file::line_of(node.source());
        else
            m_retry_schedule_broken = true;
    }
    void delivery_retry_max(std::string_view key, toml::node const& node)
    {
        if (read_duration(key, node, m_out.value.delivery_retry_max))
            m_retry_max_line = toml_file::line_of(node.source());
        else
            m_retry_schedule_broken = true;
    }
    void delivery_give_up(std::string_view key, toml::node const& node)
    {
        read_duration(key, node, m_out.value.delivery_give_up);
    }
    void log_level(std::string_view key, toml::node const& node)
    {
        std::string const* value = expect_string(key, node, "\"info\"");
        if (!value)
            return;
        if (auto level = log::parse_level(*value))
            m_out.value.log_level = *level;
        else
            error(toml_file::line_of(node.source()), "log_level = \"" + *value + "\" is not a level; use debug, info, warn or error");
    }
    void log_format(std::string_view key, toml::node const& node)
    {
        std::string const* value = expect_string(key, node, "\"text\"");
        if (!value)
            return;
        if (auto format = log::parse_format(*value))
            m_out.value.log_format = *format;
        else
            error(toml_file::line_of(node.source()), "log_format = \"" + *value + "\" is not a format; use text or json");
    }

    void sandbox(std::string_view key, toml::node const& node)
    {
        auto const* value = node.as_boolean();
        if (!value) {
            error(toml_file::line_of(node.source()), std::string(key) + " is " + toml_file::type_name(node)
                    + "; it must be true or false without quotes");
            return;
        }
        m_out.value.sandbox = value->get();
    }

    // A list of networks, "127.0.0.0/8" or one address each.
    void read_ranges(std::string_view key, toml::node const& node, std::vector<AddressRange>& out)
    {
        auto const* array = node.as_array();
        if (!array) {
            error(toml_file::line_of(node.source()), std::string(key) + " is " + toml_file::type_name(node)
                    + "; it must be a list of networks, like " + std::string(key) + " = [\"127.0.0.0/8\", \"::1/128\"]");
            return;
        }
        std::vector<AddressRange> ranges;
        for (toml::node const& element : *array) {
            std::string const* value = expect_string(std::string(key) + " entry", element, "\"127.0.0.0/8\"");
            if (!value)
                continue;
            auto range = parse_address_range(*value);
            if (!range) {
                error(toml_file::line_of(element.source()), std::string(key) + " entry \"" + *value + "\" "
                        + range.error().detail);
                continue;
            }
            ranges.push_back(std::move(range.value()));
        }
        out = std::move(ranges);
    }

    void outbound_allow(std::string_view key, toml::node const& node)
    {
        read_ranges(key, node, m_out.value.outbound_allow);
    }

    void outbound_ca_file(std::string_view key, toml::node const& node)
    {
        read_path(key, node, m_out.value.outbound_ca_file, SIZE_MAX);
    }

    void trusted_proxies(std::string_view key, toml::node const& node)
    {
        read_ranges(key, node, m_out.value.trusted_proxies);
    }

    // A base above the cap would make the first retry wait longer than any
    // later one; that is a mistake in the file, not a schedule. Checked only
    // when both values are known: a bad one is reported on its own already.
    void check_retry_schedule()
    {
        Config const& config = m_out.value;
        if (m_retry_schedule_broken || config.delivery_retry_base <= config.delivery_retry_max)
            return;
        int line = m_retry_base_line ? m_retry_base_line : m_retry_max_line;
        error(line, "delivery_retry_base (" + format_duration(config.delivery_retry_base) + ") is longer than delivery_retry_max ("
                + format_duration(config.delivery_retry_max) + "); make the base at most the maximum");
    }

    std::string const& m_file;
    Parsed<Config>& m_out;
    int m_retry_base_line = 0;
    int m_retry_max_line = 0;
    bool m_retry_schedule_broken = false;
};

ConfigReader::Key const ConfigReader::k_keys[] = {
    { "state_dir", &ConfigReader::state_dir },
    { "control_socket", &ConfigReader::control_socket },
    { "metrics_listen", &ConfigReader::metrics_listen },
    { "head_timeout", &ConfigReader::head_timeout },
    { "body_timeout", &ConfigReader::body_timeout },
    { "shutdown_timeout", &ConfigReader::shutdown_timeout },
    { "max_head_bytes", &ConfigReader::max_head_bytes },
    { "max_body_bytes", &ConfigReader::max_body_bytes },
    { "max_page_bytes", &ConfigReader::max_page_bytes },
    { "max_pending", &ConfigReader::max_pending },
    { "worker_open_files", &ConfigReader::worker_open_files },
    { "max_connections_per_address", &ConfigReader::max_connections_per_address },
    { "delivery_retry_base", &ConfigReader::delivery_retry_base },
    { "delivery_retry_max", &ConfigReader::delivery_retry_max },
    { "delivery_give_up", &ConfigReader::delivery_give_up },
    { "log_level", &ConfigReader::log_level },
    { "log_format", &ConfigReader::log_format },
    { "sandbox", &ConfigReader::sandbox },
    { "outbound_allow", &ConfigReader::outbound_allow },
    { "outbound_ca_file", &ConfigReader::outbound_ca_file },
    { "trusted_proxies", &ConfigReader::trusted_proxies },
};

std::vector<std::string_view> ConfigReader::key_names()
{
    std::vector<std::string_view> out;
    for (Key const& key : k_keys)
        out.push_back(key.name);
    return out;
}

void ConfigReader::read_root(toml::table const& root)
{
    for (auto&& [key, node] : root) {
        Handler handler = nullptr;
        for (Key const& known : k_keys) {
            if (known.name == key.str()) {
                handler = known.handler;
                break;
            }
        }
        if (handler) {
            (this->*handler)(key.str(), node);
            continue;
        }
        std::string names;
        for (Key const& known : k_keys)
            names += (names.empty() ? "" : ", ") + std::string(known.name);
        error(toml_file::line_of(key.source()), "unknown key \"" + std::string(key.str()) + "\"; the config keys are " + names
                + " (see posta-server(8))");
    }
    check_retry_schedule();
}

}

std::vector<std::string_view> config_key_names()
{
    return ConfigReader::key_names();
}

// Contract: never throws (toml++'s parse_error is caught here); keys that are
// absent keep their defaults; returns every error found.
Parsed<Config> parse_config(std::string_view text, std::string const& file)
{
    return toml_file::parse_with<Config, ConfigReader>(text, file);
}

Parsed<Config> load_config(std::string const& path)
{
    if (path.empty())
        return {};
    return toml_file::load<Config>(path, "config", "--config", parse_config);
}

}
