// The state folder of one identity, <state_dir>/<slug>/, which holds its
// keys.json and inbox.db (PROTOCOL.md, "Files of an identity"). Only the
// identity's worker creates or opens it; the supervisor never does.
#pragma once

#include "common/result.h"

#include <string>
#include <sys/stat.h>

namespace posta {

// Creates `state_dir` and `state_dir/slug` with mode 0700 when missing (not
// their parents) and returns the identity folder's path. An existing folder
// is used as it is; one that group or others may enter is logged as a
// warning, since inbox.db inherits nothing from keys.json's strict mode. An
// identity folder that is a symlink, or that is not owned by the daemon's
// user, is an error with the fix.
Result<std::string> prepare_identity_dir(std::string const& state_dir, std::string const& slug);

// The files of an identity (its folder, keys.json, inbox.db) must be owned
// by the user the daemon runs as: an error naming `path` and the chown that
// fixes it, when `st` (of the open file) says otherwise.
Result<void> check_owner(struct stat const& st, std::string const& path);

}
