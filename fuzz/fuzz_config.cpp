// Fuzz target: the daemon config file (parse_config) and the durations in it
// (parse_duration). The supervisor reads the file at start and on SIGHUP; a
// reload must never crash the daemon whatever the operator saved. An accepted
// config must hold values in their documented ranges, and every accepted
// duration must survive format_duration and parse_duration unchanged.
#include "config/config.h"
#include "common/duration.h"
#include "fuzz_invariant.h"

#include <cstdint>
#include <string>
#include <string_view>

using namespace posta;
using posta::fuzz::require;

namespace {

void check_duration(Duration duration)
{
    require(duration.count() > 0, "an accepted duration is not positive");
    auto again = parse_duration(format_duration(duration));
    require(again && *again == duration,
        "format_duration then parse_duration changes a duration");
}

}

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view input(reinterpret_cast<char const*>(data), size);

    if (auto duration = parse_duration(input))
        check_duration(*duration);

    auto parsed = parse_config(input, "fuzz.toml");
    for (Diagnostic const& d : parsed.errors) {
        require(d.line >= 0, "a diagnostic has a negative line");
        require(!d.message.empty(), "a diagnostic has no message");
    }
    if (!parsed.ok())
        return 0;
    Config const& config = parsed.value;
    require(!config.state_dir.empty() && !config.control_socket.empty(), "an accepted config has an empty path");
    require(config.max_head_bytes >= 1024 && config.max_head_bytes <= 1024 * 1024, "max_head_bytes out of range");
    require(config.max_body_bytes >= 1024 && config.max_body_bytes <= 1024 * 1024 * 1024, "max_body_bytes out of range");
    require(config.max_pending >= 1 && config.max_pending <= 65536, "max_pending out of range");
    for (Duration d : { config.head_timeout, config.shutdown_timeout, config.delivery_retry_base,
             config.delivery_retry_max, config.delivery_give_up })
        check_duration(d);
    require(config.delivery_retry_base <= config.delivery_retry_max, "an accepted retry base exceeds the retry maximum");
    return 0;
}
