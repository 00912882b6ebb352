// ClientOrigin: who a request comes from when trusted fronts stand between
// (trusted_proxies, posta-server(8)). From a connection whose peer is a
// trusted proxy, X-Forwarded-For is read from the right, past every trusted
// hop, to the first address that is not one: the client. From any other
// peer the header is the client's own claim and is ignored. Pure: the
// session calls it with each request head; it owns nothing.
#pragma once

#include "config/outbound_policy.h"
#include "http/http_message.h"

#include <string>
#include <string_view>
#include <vector>

namespace posta {

struct ClientOrigin {
    // The client's address without port ("203.0.113.7", "2001:db8::7"), as
    // inet_ntop writes it; empty when X-Forwarded-For does not apply (the
    // connection's peer is the client).
    std::string forwarded_host;
    // The connection's peer is a trusted proxy.
    bool via_trusted_proxy = false;
    // A trusted proxy took the client's connection over TLS: it came from
    // one that does not say otherwise with X-Forwarded-Proto (its first
    // value, the one facing the client; "http" says plain).
    bool secure_at_front = false;
};

// `peer_host` is the connection's peer without port, as format_host()
// writes it (the front's address, or the client's from a PROXY header).
// An X-Forwarded-For entry that is not an address (with or without a port,
// IPv6 in brackets or bare) ends the walk at the trusted hop right of it.
ClientOrigin client_origin(std::string_view peer_host, Headers const& headers,
    std::vector<AddressRange> const& trusted_proxies);

}
