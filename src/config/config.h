// The daemon config file (--config, TOML, every key optional). Read by the
// supervisor at start and on SIGHUP; workers get a copy in their start
// message (worker_start.h).
// ARCHITECTURE.md, "Config file", lists the keys and defaults.
#pragma once

#include "config/diagnostic.h"
#include "common/duration.h"
#include "common/log.h"
#include "config/outbound_policy.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace posta {

struct Config {
    std::string state_dir = "/var/lib/posta";
    std::string control_socket = "/run/posta/control.sock";
    // Where the supervisor serves GET /metrics ("127.0.0.1:9187"; empty:
    // nowhere, the default). Checked with parse_socket_address.
    std::string metrics_listen;
    Duration head_timeout = std::chrono::seconds(10);
    // A request body must arrive whole within this of the end of its head
    // (a worker answers 408 otherwise), however steadily it trickles.
    Duration body_timeout = std::chrono::seconds(60);
    Duration shutdown_timeout = std::chrono::seconds(10);
    size_t max_head_bytes = 16384;
    size_t max_body_bytes = 1048576;
    // The bytes of messages one page of GET /api/messages carries at most
    // (a single larger message still makes a page of its own).
    size_t max_page_bytes = 4194304;
    size_t max_pending = 64;
    // RLIMIT_NOFILE of each worker (connections, event streams, outbound
    // requests, its database): what one identity may hold of the machine.
    size_t worker_open_files = 8192;
    // Connections one client address may hold open to one identity at once;
    // the worker refuses more (429) so that one stranger cannot take all of
    // its open files.
    size_t max_connections_per_address = 64;
    Duration delivery_retry_base = std::chrono::seconds(30);
    Duration delivery_retry_max = std::chrono::hours(6);
    Duration delivery_give_up = std::chrono::hours(72);
    log::Level log_level = log::Level::Info;
    log::Format log_format = log::Format::Text;
    // Workers restrict themselves before serving (worker/sandbox.h). Off
    // only for debugging; every worker then says so loudly in the log.
    bool sandbox = true;
    // Ranges the outbound policy lets workers connect to although they are
    // refused by default (loopback, private, ...): config/outbound_policy.h.
    std::vector<AddressRange> outbound_allow;
    // A PEM file of the CA certificates a worker's outbound https (key
    // fetches, deliveries) trusts instead of the system's store; empty: the
    // system's. Read by each worker before its sandbox.
    std::string outbound_ca_file;
    // Fronts whose word on the client is believed: a connection from one
    // may begin with a PROXY header, a request from one may carry
    // X-Forwarded-For (posta-server(8), "Behind a front").
    std::vector<AddressRange> trusted_proxies;
};

// Whether SIGHUP applies a key's new value at once (the supervisor's intake
// and log read it, and the policy hands it to running workers) or it waits
// for a restart (a worker's setup, a listener or the control socket was made
// from it; the reload reports it). posta-server(8) lists both.
enum class OnReload { Applied, NeedsRestart };

// One Config field, whatever its type.
using ConfigMember = std::variant<std::string Config::*, Duration Config::*, size_t Config::*, log::Level Config::*,
    log::Format Config::*, bool Config::*, std::vector<AddressRange> Config::*>;

struct ConfigField {
    std::string_view key; // its name in the file, the worker start message and reload reports
    ConfigMember member;
    OnReload on_reload;
};

// Every Config field once, in the order of posta-server(8): the one list the
// parser, the worker start message and the reload plan all go by.
std::vector<ConfigField> const& config_fields();

// Parses config text; `file` is used in diagnostics only. Unknown keys, wrong
// types, bad durations and out-of-range numbers are errors with their line.
Parsed<Config> parse_config(std::string_view text, std::string const& file);

// Reads and parses `path`; an empty path gives the defaults.
Parsed<Config> load_config(std::string const& path);

}
