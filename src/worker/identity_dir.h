// The state folder of one identity, <state_dir>/<slug>/, which holds its
// keys.json and inbox.db (PROTOCOL.md, "Files of an identity"). Only the
// identity's worker creates or opens it; the supervisor never does.
#pragma once

#include "common/result.h"

#include <string>

namespace posta {

// Creates `state_dir` and `state_dir/slug` with mode 0700 when missing (not
// their parents) and returns the identity folder's path. An existing folder
// is used as it is; one that group or others may enter is logged as a
// warning, since inbox.db inherits nothing from keys.json's strict mode.
Result<std::string> prepare_identity_dir(std::string const& state_dir, std::string const& slug);

}
