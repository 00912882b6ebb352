#include "worker_start.h"

#include "ipc/text_lines.h"

#include <cerrno>
#include <concepts>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <type_traits>
#include <unistd.h>
#include <variant>
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
void put(std::string& out, std::string_view name, std::string const& value) { put(out, name, std::string_view(value)); }
// Only a bool: a string literal would convert to one before a string_view.
template<std::same_as<bool> Bool> void put(std::string& out, std::string_view name, Bool value)
{
    put(out, name, uint64_t { value ? 1U : 0U });
}
void put(std::string& out, std::string_view name, Duration value) { put(out, name, static_cast<uint64_t>(value.count())); }
template<typename Enum>
    requires std::is_enum_v<Enum>
void put(std::string& out, std::string_view name, Enum value)
{
    put(out, name, static_cast<uint64_t>(value));
}
// One range a line.
void put(std::string& out, std::string_view name, std::vector<AddressRange> const& ranges)
{
    std::string text;
    for (auto const& range : ranges)
        text += range.text + '\n';
    put(out, name, text);
}

// The largest value of each enum a Config field holds.
constexpr log::Level last_value(log::Level) { return log::Level::Error; }
constexpr log::Format last_value(log::Format) { return log::Format::Json; }

Result<std::vector<AddressRange>> parse_ranges(std::string_view text)
{
    auto lines = split_lines(text, "worker start");
    if (!lines)
        return lines.error();
    std::vector<AddressRange> out;
    for (std::string_view line : *lines) {
        auto range = parse_address_range(line);
        if (!range)
            return range.error();
        out.push_back(std::move(range.value()));
    }
    return out;
}

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

    Result<void> take_value(std::string_view name, std::string& out) { return take_string(name, out); }
    Result<void> take_value(std::string_view name, size_t& out) { return take_number(name, out); }

    Result<void> take_value(std::string_view name, Duration& out)
    {
        int64_t ms = 0;
        if (auto taken = take_number(name, ms); !taken)
            return taken;
        out = Duration(ms);
        return {};
    }

    Result<void> take_value(std::string_view name, bool& out)
    {
        int value = 0;
        if (auto taken = take_number(name, value); !taken)
            return taken;
        if (value != 0 && value != 1)
            return Error::message("worker start", "bad value", std::string(name));
        out = value == 1;
        return {};
    }

    template<typename Enum>
        requires std::is_enum_v<Enum>
    Result<void> take_value(std::string_view name, Enum& out)
    {
        int value = 0;
        if (auto taken = take_number(name, value); !taken)
            return taken;
        if (value < 0 || value > static_cast<int>(last_value(out)))
            return Error::message("worker start", "bad value", std::string(name));
        out = static_cast<Enum>(value);
        return {};
    }

    Result<void> take_value(std::string_view name, std::vector<AddressRange>& out)
    {
        auto value = take(name);
        if (!value)
            return value.error();
        auto parsed = parse_ranges(*value);
        if (!parsed)
            return parsed.error();
        out = std::move(parsed.value());
        return {};
    }

    bool empty() const { return m_text.empty(); }

private:
    std::string_view m_text;
};

}

std::string WorkerStart::serialize() const
{
    std::string out;
    put(out, "slug", identity.slug);
    put(out, "url", identity.url);
    put(out, "name", identity.name);
    put(out, "host_key", identity.host_key);
    put(out, "line", static_cast<uint64_t>(identity.line));
    for (ConfigField const& field : config_fields())
        std::visit([&](auto member) { put(out, field.key, config.*member); }, field.member);
    put(out, "policy", policy.serialize());
    put(out, "supervisor", static_cast<uint64_t>(supervisor));
    return out;
}

Result<WorkerStart> WorkerStart::deserialize(std::string_view text)
{
    WorkerStart out;
    Reader in(text);
    std::string policy;
    Result<void> identity[] = {
        in.take_string("slug", out.identity.slug),
        in.take_string("url", out.identity.url),
        in.take_string("name", out.identity.name),
        in.take_string("host_key", out.identity.host_key),
        in.take_number("line", out.identity.line),
    };
    // Array elements are initialised in order, so each step read the field
    // after the previous one; the first failure names what was wrong.
    for (auto& step : identity) {
        if (!step)
            return step.error();
    }
    for (ConfigField const& field : config_fields()) {
        auto taken = std::visit([&](auto member) { return in.take_value(field.key, out.config.*member); }, field.member);
        if (!taken)
            return taken.error();
    }
    if (auto taken = in.take_string("policy", policy); !taken)
        return taken.error();
    if (auto taken = in.take_number("supervisor", out.supervisor); !taken)
        return taken.error();
    if (!in.empty())
        return Error::message("worker start", "trailing bytes");
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
