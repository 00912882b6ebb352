#include "identity_dir.h"

#include "common/log.h"

#include <cerrno>
#include <sys/stat.h>

namespace posta {

namespace {

// mkdir with mode 0700 exactly (the umask can only take bits away, and we
// want none of group's or others'). An existing directory is fine.
Result<void> make_private_dir(std::string const& path)
{
    if (::mkdir(path.c_str(), 0700) == 0) {
        if (::chmod(path.c_str(), 0700) < 0)
            return Error::from_errno("chmod", path);
        return {};
    }
    if (errno != EEXIST) {
        Error error = Error::from_errno("mkdir", path);
        if (error.is(ErrorDomain::Errno, EACCES) || error.is(ErrorDomain::Errno, EPERM))
            error.detail += "; make the parent folder writable by the user posta-server runs as";
        else if (error.is(ErrorDomain::Errno, ENOENT))
            error.detail += "; create the parent folder first, or set state_dir in the config";
        return error;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0)
        return Error::from_errno("stat", path);
    if (!S_ISDIR(st.st_mode))
        return Error::message("state folder", "exists but is not a directory; move it away", path);
    return {};
}

}

Result<std::string> prepare_identity_dir(std::string const& state_dir, std::string const& slug)
{
    std::string base = state_dir;
    while (base.size() > 1 && base.back() == '/')
        base.pop_back();
    if (auto made = make_private_dir(base); !made)
        return made.error();
    std::string dir = base + "/" + slug;
    if (auto made = make_private_dir(dir); !made)
        return made.error();

    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
        log::warn("state folder %s has mode %04o: group or others can enter it; fix: chmod 700 %s",
            dir.c_str(), static_cast<unsigned>(st.st_mode & 07777), dir.c_str());
    return dir;
}

}
