// MachineAddresses: the outbox's record of which machine each peer's host
// and port leads to, fed by the HttpClient's connect hook (every connection
// the worker opens). A posta server hosts many identities under as many
// names, so the outbox bounds and backs off per machine, not per name. It
// owns only its table, bounded; the worker calls note() from its hook.
#pragma once

#include "http/http_client.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace posta {

class MachineAddresses {
public:
    // Bound on the host:port pairs kept (one per peer machine name): past
    // it the table is forgotten all at once.
    static constexpr size_t max_entries = 4096;

    // Records the attempt's address under its URL's "host:port" when it is
    // the first address that request tried; its later ones (happy eyeballs'
    // second family, the next address after a refusal) change nothing,
    // unless another request to that host and port tried one in between.
    void note(HttpConnectAttempt const&);

    // The address ("192.0.2.7:443", "[2001:db8::7]:443") that the latest
    // request to `url`'s host and port that opened a connection tried first,
    // whether the connection worked or not; nullopt until one did. Every
    // name of one machine resolves to the same first address, so the outbox
    // uses it to treat them as one destination.
    std::optional<std::string> address_of(std::string_view url) const;

private:
    struct Entry {
        HttpRequestId request = 0; // the request that set it
        std::string address;
    };
    std::unordered_map<std::string, Entry> m_entries; // by "host:port", as curl parses the URL
};

}
