// Fuzz target: the manifest (parse_manifest), read by the supervisor at start
// and on every SIGHUP, so a bad file must give diagnostics, never a crash. An
// accepted manifest must hold what routing relies on: valid slugs, canonical
// URLs whose host key is the URL's own, no slug or host key twice.
#include "common/host_key.h"
#include "config/manifest.h"
#include "fuzz_invariant.h"

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

using namespace posta;
using posta::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view input(reinterpret_cast<char const*>(data), size);

    auto parsed = parse_manifest(input, "fuzz.toml");
    for (Diagnostic const& d : parsed.errors) {
        require(d.line >= 0, "a diagnostic has a negative line");
        require(!d.message.empty(), "a diagnostic has no message");
        (void)d.text();
    }
    if (!parsed.ok())
        return 0;

    std::set<std::string> slugs;
    std::set<std::string> hosts;
    for (IdentityEntry const& entry : parsed.value.identities) {
        require(valid_slug(entry.slug), "an accepted slug is not valid");
        require(slugs.insert(entry.slug).second, "an accepted manifest has a slug twice");
        require(hosts.insert(entry.host_key).second, "an accepted manifest has a host key twice");
        require(!entry.name.empty(), "an accepted identity has no name");
        auto url = parse_identity_url(entry.url);
        require(url.ok(), "an accepted URL does not parse again");
        require(url->canonical == entry.url, "an accepted URL is not canonical");
        require(url->host_key == entry.host_key, "an entry's host key is not its URL's");
        auto key = host_key_from_header(entry.host_key);
        require(key && *key == entry.host_key, "a Host equal to an entry's host key does not route to it");
        require(parsed.value.find_slug(entry.slug) == &entry, "find_slug does not find an entry");
        require(entry.same_as(entry), "an entry is not the same as itself");
    }
    return 0;
}
