#include "worker_start.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace posta {

namespace {

// Every field is "<name> <length>\n<value>\n", in a fixed order: the reader
// checks each name, so a field added on one side only is a malformed start,
// never a silently defaulted setting.
void put(std::string& out, std::string_view name, std::string_view value)
{
    out.append(name);
    out += ' ';
    out += std::to_string(value.size());
    out += '\n';
    out.append(value);
    out += '\n';
}

void put(std::string& out, std::string_view name, uint64_t value) { put(out, name, std::to_string(value)); }

class Reader {
public:
    explicit Reader(std::string_view text)
        : m_text(text)
    {
    }

    Result<std::string_view> take(std::string_view name)
    {
        size_t line_end = m_text.find('\n');
        if (line_end == std::string_view::npos || m_text.substr(0, name.size()) != name
            || line_end <= name.size() || m_text[name.size()] != ' ')
            return Error::message("worker start", "expected field", std::string(name));
        std::string_view digits = m_text.substr(name.size() + 1, line_end - name.size() - 1);
        size_t length = 0;
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
        if (ec != std::errc() || ptr != digits.data() + digits.size() || length > m_text.size() - line_end - 1
            || m_text.size() - line_end - 1 - length < 1 || m_text[line_end + 1 + length] != '\n')
            return Error::message("worker start", "bad length", std::string(name));
        std::string_view value = m_text.substr(line_end + 1, length);
        m_text.remove_prefix(line_end + 1 + length + 1);
        return value;
    }

    template<typename T> Result<void> take_number(std::string_view name, T& out)
    {
        auto value = take(name);
        if (!value)
            return value.error();
        auto [ptr, ec] = std::from_chars(value->data(), value->data() + value->size(), out);
        if (ec != std::errc() || ptr != value->data() + value->size())
            return Error::message("worker start", "bad number", std::string(name));
        return {};
    }

    Result<void> take_string(std::string_view name, std::string& out)
    {
        auto value = take(name);
        if (!value)
            return value.error();
        out.assign(*value);
        return {};
    }

    Result<void> take_duration(std::string_view name, Duration& out)
    {
        int64_t ms = 0;
        if (auto taken = take_number(name, ms); !taken)
            return taken;
        out = Duration(ms);
        return {};
    }

    template<typename Enum> Result<void> take_enum(std::string_view name, Enum& out, Enum last)
    {
        int value = 0;
        if (auto taken = take_number(name, value); !taken)
            return taken;
        if (value < 0 || value > static_cast<int>(last))
            return Error::message("worker start", "bad value", std::string(name));
        out = static_cast<Enum>(value);
        return {};
    }

    bool empty() const { return m_text.empty(); }

private:
    std::string_view m_text;
};

uint64_t ms(Duration d) { return static_cast<uint64_t>(d.count()); }

std::string ranges_text(std::vector<AddressRange> const& ranges)
{
    std::string out;
    for (auto const& range : ranges)
        out += range.text + '\n';
    return out;
}

Result<std::vector<AddressRange>> parse_ranges(std::string_view text)
{
    std::vector<AddressRange> out;
    while (!text.empty()) {
        size_t end = text.find('\n');
        if (end == std::string_view::npos)
            return Error::message("worker start", "bad value", "address range");
        auto range = parse_address_range(text.substr(0, end));
        if (!range)
            return range.error();
        out.push_back(std::move(range.value()));
        text.remove_prefix(end + 1);
    }
    return out;
}

}

// A tripwire for whoever adds a Config field: add it to serialize() and
// deserialize() below (and to the round-trip test), then update the size.
static_assert(sizeof(Config) == 4 * sizeof(std::string) + 12 * 8 + 2 * sizeof(int) + 8
            + 2 * sizeof(std::vector<AddressRange>),
    "Config changed: pass the new field to workers in WorkerStart");

std::string WorkerStart::serialize() const
{
    std::string out;
    put(out, "slug", identity.slug);
    put(out, "url", identity.url);
    put(out, "name", identity.name);
    put(out, "host_key", identity.host_key);
    put(out, "line", static_cast<uint64_t>(identity.line));
    put(out, "state_dir", config.state_dir);
    put(out, "control_socket", config.control_socket);
    put(out, "metrics_listen", config.metrics_listen);
    put(out, "head_timeout", ms(config.head_timeout));
    put(out, "body_timeout", ms(config.body_timeout));
    put(out, "shutdown_timeout", ms(config.shutdown_timeout));
    put(out, "max_head_bytes", config.max_head_bytes);
    put(out, "max_body_bytes", config.max_body_bytes);
    put(out, "max_page_bytes", config.max_page_bytes);
    put(out, "max_pending", config.max_pending);
    put(out, "worker_open_files", config.worker_open_files);
    put(out, "max_connections_per_address", config.max_connections_per_address);
    put(out, "delivery_retry_base", ms(config.delivery_retry_base));
    put(out, "delivery_retry_max", ms(config.delivery_retry_max));
    put(out, "delivery_give_up", ms(config.delivery_give_up));
    put(out, "log_level", static_cast<uint64_t>(config.log_level));
    put(out, "log_format", static_cast<uint64_t>(config.log_format));
    put(out, "sandbox", config.sandbox ? 1 : 0);
    put(out, "outbound_allow", ranges_text(config.outbound_allow));
    put(out, "outbound_ca_file", config.outbound_ca_file);
    put(out, "trusted_proxies", ranges_text(config.trusted_proxies));
    put(out, "policy", policy.serialize());
    put(out, "supervisor", static_cast<uint64_t>(supervisor));
    return out;
}

Result<WorkerStart> WorkerStart::deserialize(std::string_view text)
{
    WorkerStart out;
    Reader in(text);
    Config& c = out.config;
    int sandbox = 0;
    std::string outbound_allow, trusted_proxies; // one range a line
    std::string policy;
    Result<void> steps[] = {
        in.take_string("slug", out.identity.slug),
        in.take_string("url", out.identity.url),
        in.take_string("name", out.identity.name),
        in.take_string("host_key", out.identity.host_key),
        in.take_number("line", out.identity.line),
        in.take_string("state_dir", c.state_dir),
        in.take_string("control_socket", c.control_socket),
        in.take_string("metrics_listen", c.metrics_listen),
        in.take_duration("head_timeout", c.head_timeout),
        in.take_duration("body_timeout", c.body_timeout),
        in.take_duration("shutdown_timeout", c.shutdown_timeout),
        in.take_number("max_head_bytes", c.max_head_bytes),
        in.take_number("max_body_bytes", c.max_body_bytes),
        in.take_number("max_page_bytes", c.max_page_bytes),
        in.take_number("max_pending", c.max_pending),
        in.take_number("worker_open_files", c.worker_open_files),
        in.take_number("max_connections_per_address", c.max_connections_per_address),
        in.take_duration("delivery_retry_base", c.delivery_retry_base),
        in.take_duration("delivery_retry_max", c.delivery_retry_max),
        in.take_duration("delivery_give_up", c.delivery_give_up),
        in.take_enum("log_level", c.log_level, log::Level::Error),
        in.take_enum("log_format", c.log_format, log::Format::Json),
        in.take_number("sandbox", sandbox),
        in.take_string("outbound_allow", outbound_allow),
        in.take_string("outbound_ca_file", c.outbound_ca_file),
        in.take_string("trusted_proxies", trusted_proxies),
        in.take_string("policy", policy),
        in.take_number("supervisor", out.supervisor),
    };
    // Array elements are initialised in order, so each step read the field
    // after the previous one; the first failure names what was wrong.
    for (auto& step : steps) {
        if (!step)
            return step.error();
    }
    if (!in.empty())
        return Error::message("worker start", "trailing bytes");
    if (sandbox != 0 && sandbox != 1)
        return Error::message("worker start", "bad value", "sandbox");
    c.sandbox = sandbox == 1;
    for (auto [written, ranges] : { std::pair { &outbound_allow, &c.outbound_allow },
             std::pair { &trusted_proxies, &c.trusted_proxies } }) {
        auto parsed = parse_ranges(*written);
        if (!parsed)
            return parsed.error();
        *ranges = std::move(parsed.value());
    }
    auto parsed = Policy::deserialize(policy);
    if (!parsed)
        return parsed.error();
    out.policy = std::move(parsed.value());
    return out;
}

std::string worker_title(std::string_view slug) { return "posta-server: worker " + std::string(slug); }

Result<pid_t> spawn_template(char const* exe, int channel, int stderr_fd)
{
    // posix_spawn clones with CLONE_VM | CLONE_VFORK: no copy of the
    // supervisor's page tables, nothing of its memory reaches the new image.
    // The argv area (with the environment after it) is long enough for each
    // worker to write its title over.
    posix_spawn_file_actions_t actions;
    if (int rc = posix_spawn_file_actions_init(&actions); rc != 0)
        return Error::from_errno_code(rc, "posix_spawn_file_actions_init", {});
    int rc = 0;
    if (stderr_fd >= 0)
        rc = posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&actions, channel, worker_channel_fd);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&actions, worker_channel_fd + 1);
    // The template binds every symbol of every library when it loads
    // (LD_BIND_NOW), once: each worker it forks inherits resolved tables
    // instead of resolving lazily, library call by library call, itself.
    std::vector<char const*> env;
    for (char** entry = environ; *entry; ++entry)
        if (std::strncmp(*entry, "LD_BIND_NOW=", 12) != 0)
            env.push_back(*entry);
    env.push_back("LD_BIND_NOW=1");
    env.push_back(nullptr);
    pid_t pid = -1;
    if (rc == 0) {
        char const* argv[] = { "posta-server", template_mode_arg, nullptr };
        rc = ::posix_spawn(&pid, exe, &actions, nullptr, const_cast<char* const*>(argv),
            const_cast<char* const*>(env.data()));
    }
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return Error::from_errno_code(rc, "posix_spawn", exe);
    return pid;
}

}
