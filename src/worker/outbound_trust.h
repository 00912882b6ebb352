// The outbound trust anchors: the CA certificates of the config's
// outbound_ca_file, which a worker's HttpClient trusts for https instead of
// the system's store. Read by each worker before its sandbox (the file may
// be anywhere the operator keeps it), never again; owns nothing.
#pragma once

#include "common/result.h"

#include <string>

namespace posta {

// The PEM text of `path`, once it is known to hold at least one certificate
// that OpenSSL parses (the blocks other than certificates are ignored, as
// curl ignores them). The error is one operator line: the file, what is
// wrong with it, the fix.
Result<std::string> load_outbound_ca_file(std::string const& path);

}
