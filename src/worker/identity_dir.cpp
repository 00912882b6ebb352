#include "identity_dir.h"

#include "common/log.h"

#include <cerrno>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

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

Result<void> check_owner(struct stat const& st, std::string const& path)
{
    uid_t us = ::geteuid();
    if (st.st_uid == us)
        return {};
    return Error::message("ownership",
        "is owned by uid " + std::to_string(st.st_uid) + ", not by the user posta-server runs as (uid "
            + std::to_string(us) + "); fix: chown " + std::to_string(us) + " " + path,
        path);
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

    // The identity folder itself, not what a name leads to: a symlink here
    // could make this identity's worker open another identity's files
    // before its sandbox holds (state_dir itself may be a symlink: it is the
    // operator's, shared by all).
    struct stat st {};
    if (::lstat(dir.c_str(), &st) < 0)
        return Error::from_errno("lstat", dir);
    if (S_ISLNK(st.st_mode))
        return Error::message("identity folder", "is a symlink; it must be a real folder in state_dir (move the "
            "folder it points to here)", dir);
    if (!S_ISDIR(st.st_mode))
        return Error::message("identity folder", "exists but is not a directory; move it away", dir);
    if (auto owned = check_owner(st, dir); !owned)
        return owned.error();
    if ((st.st_mode & 077) != 0)
        log::warn("state folder %s has mode %04o: group or others can enter it; fix: chmod 700 %s",
            dir.c_str(), static_cast<unsigned>(st.st_mode & 07777), dir.c_str());
    return dir;
}

}
