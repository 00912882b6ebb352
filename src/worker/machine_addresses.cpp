// The key is the URL's host and port as curl itself parses them (the
// default port filled in), so a name is kept under the name curl resolved.
#include "machine_addresses.h"

#include "common/address.h"
#include "http/http_message.h"

#include <curl/curl.h>

#include <memory>

namespace posta {

namespace {

// "host:port" of an http(s) URL, lower-cased; empty for a URL curl cannot
// parse.
std::string origin_key(std::string_view url)
{
    std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(curl_url(), &curl_url_cleanup);
    if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, std::string(url).c_str(), 0) != CURLUE_OK)
        return {};
    char* host = nullptr;
    char* port = nullptr;
    std::string key;
    if (curl_url_get(parsed.get(), CURLUPART_HOST, &host, 0) == CURLUE_OK
        && curl_url_get(parsed.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        key = ascii_lower(host);
        key += ':';
        key += port;
    }
    curl_free(host);
    curl_free(port);
    return key;
}

}

void MachineAddresses::note(HttpConnectAttempt const& attempt)
{
    std::string origin = origin_key(attempt.url);
    if (origin.empty())
        return;
    auto found = m_entries.find(origin);
    if (found != m_entries.end() && found->second.request == attempt.request)
        return; // not the request's first address
    if (found == m_entries.end() && m_entries.size() >= max_entries)
        m_entries.clear();
    m_entries[origin] = Entry { attempt.request, format_address(attempt.address, attempt.length) };
}

std::optional<std::string> MachineAddresses::address_of(std::string_view url) const
{
    auto found = m_entries.find(origin_key(url));
    if (found == m_entries.end())
        return std::nullopt;
    return found->second.address;
}

}
