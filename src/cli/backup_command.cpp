#include "backup_command.h"

#include "cli/control_client.h"
#include "config/config.h"
#include "config/manifest.h"
#include "common/fd_io.h"
#include "common/unique_fd.h"
#include "worker/sqlite.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

namespace posta {

namespace {

// What a copy of an identity is, and what must not be in the way of one:
// SQLite's side files too, which would be taken for part of the database.
constexpr std::array<char const*, 2> identity_files { "keys.json", "inbox.db" };
constexpr std::array<char const*, 5> occupying_files { "keys.json", "inbox.db", "inbox.db-wal", "inbox.db-shm",
    "inbox.db-journal" };
constexpr size_t max_keys_bytes = 64 * 1024;

// Acts as another user (effective uid and gid, which decide who owns what is
// created and what may be opened) until destroyed. Only root changes: run as
// anyone else, the command is that user throughout.
class ActingAs {
public:
    static Result<ActingAs> owner_of(struct stat const& st)
    {
        ActingAs as;
        if (::geteuid() != 0 || st.st_uid == 0)
            return as;
        as.m_gid = ::getegid();
        if (::setegid(st.st_gid) < 0)
            return Error::from_errno("setegid", std::to_string(st.st_gid));
        if (::seteuid(st.st_uid) < 0) {
            int saved = errno;
            (void)::setegid(as.m_gid);
            return Error::from_errno_code(saved, "seteuid", std::to_string(st.st_uid));
        }
        as.m_changed = true;
        return as;
    }
    ActingAs(ActingAs&& other) noexcept
        : m_changed(std::exchange(other.m_changed, false))
        , m_gid(other.m_gid)
    {
    }
    ActingAs& operator=(ActingAs&&) = delete;
    ~ActingAs()
    {
        // Back to root: the saved uid is still 0. Failing that, nothing
        // later could be trusted to be done as whom.
        if (m_changed && (::seteuid(0) < 0 || ::setegid(m_gid) < 0))
            std::abort();
    }

private:
    ActingAs() = default;
    bool m_changed = false;
    gid_t m_gid = 0;
};

std::string join(std::string const& dir, char const* name) { return dir + "/" + name; }

// `path` as the path of an SQLite URI: the characters that end or escape it
// percent-encoded.
std::string uri_path(std::string const& path)
{
    std::string out;
    for (char c : path) {
        if (c == '%' || c == '?' || c == '#') {
            char hex[4];
            std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(c));
            out += hex;
        } else {
            out += c;
        }
    }
    return out;
}

// A folder that must be a real one: not a symlink, not a file.
Result<struct stat> real_folder(std::string const& path, char const* what)
{
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0)
        return Error::from_errno("lstat", path);
    if (S_ISLNK(st.st_mode))
        return Error::message(what, "is a symlink; give the real folder", path);
    if (!S_ISDIR(st.st_mode))
        return Error::message(what, "is not a folder", path);
    return st;
}

// None of the files of an identity is in `dir`.
Result<void> check_free(std::string const& dir)
{
    for (char const* name : occupying_files) {
        struct stat st {};
        std::string path = join(dir, name);
        if (::lstat(path.c_str(), &st) == 0)
            return Error::message("refused", "exists already, and nothing is overwritten; choose a folder without "
                "keys.json, inbox.db or its -wal, -shm and -journal (or move them away)", path);
        if (errno != ENOENT)
            return Error::from_errno("lstat", path);
    }
    return {};
}

// Makes `dir` (0700) if missing and opens it: it must be a real folder that
// holds none of an identity's files. `what` names it in errors.
Result<UniqueFd> open_free_folder(std::string const& dir, char const* what)
{
    if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
        return Error::from_errno("mkdir", dir);
    if (auto folder = real_folder(dir, what); !folder)
        return folder.error();
    if (auto free = check_free(dir); !free)
        return free.error();
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd)
        return Error::from_errno("open", dir);
    return fd;
}

// Opens an identity file to read: a regular file, never through a symlink.
Result<UniqueFd> open_source(std::string const& path)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) {
        if (errno == ELOOP)
            return Error::message("open", "is a symlink; the files of an identity are never followed", path);
        return Error::from_errno("open", path);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0)
        return Error::from_errno("fstat", path);
    if (!S_ISREG(st.st_mode))
        return Error::message("open", "is not a regular file", path);
    return fd;
}

// Copies `from` whole into `to` and flushes it to disk.
Result<void> copy_file(int from, int to, std::string const& to_path)
{
    std::string buffer(1 << 16, '\0');
    for (;;) {
        auto n = read_some(from, buffer.data(), buffer.size(), to_path);
        if (!n)
            return n.error();
        if (*n == 0)
            break;
        if (auto written = write_all(to, std::string_view(buffer.data(), *n), to_path); !written)
            return written;
    }
    sodium_memzero(buffer.data(), buffer.size()); // keys.json's secret key came through here
    if (::fsync(to) < 0)
        return Error::from_errno("fsync", to_path);
    return {};
}

// The files this command created, removed again if it fails before the end.
class Created {
public:
    explicit Created(int dir_fd)
        : m_dir(dir_fd)
    {
    }
    ~Created()
    {
        for (auto const& name : m_names)
            ::unlinkat(m_dir, name.c_str(), 0);
    }
    void add(std::string name) { m_names.push_back(std::move(name)); }
    void keep() { m_names.clear(); }

private:
    int m_dir;
    std::vector<std::string> m_names;
};

Result<UniqueFd> create_at(int dir_fd, std::string const& dir, char const* name, Created& created)
{
    UniqueFd fd(::openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
        if (errno == EEXIST)
            return Error::message("refused", "exists already, and nothing is overwritten", join(dir, name));
        return Error::from_errno("create", join(dir, name));
    }
    created.add(name);
    return fd;
}

Result<Config> load_config_or_fail(std::string const& config_path)
{
    auto config = load_config(config_path);
    if (!config.ok()) {
        std::string text;
        for (auto const& d : config.errors)
            text += (text.empty() ? "" : "; ") + d.text();
        return Error::message("config", text);
    }
    return config.value;
}

// Copies the identity's keys.json into `keys_out` and its inbox.db into
// `dir`/inbox.db (created empty), reading both as the identity folder's
// owner.
Result<void> copy_as_owner(std::string const& source, std::string const& dir, struct stat const& owner, int keys_out)
{
    // Opened first, as the operator, so that no file of it is created
    // later: with its journal in memory, the copy goes through this one file.
    auto to = SqliteDb::open(join(dir, "inbox.db"), SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW);
    if (!to)
        return to.error();
    if (auto set = to->exec("PRAGMA journal_mode=MEMORY; PRAGMA temp_store=MEMORY; PRAGMA synchronous=FULL;"); !set)
        return set.error();

    auto as = ActingAs::owner_of(owner);
    if (!as)
        return as.error();
    auto keys_in = open_source(join(source, "keys.json"));
    if (!keys_in)
        return keys_in.error();
    std::string keys(max_keys_bytes + 1, '\0');
    auto read = read_into(keys_in->get(), keys, join(source, "keys.json"));
    auto written = read ? write_all(keys_out, keys, join(dir, "keys.json")) : read;
    bool too_large = keys.size() > max_keys_bytes;
    sodium_memzero(keys.data(), keys.size());
    if (!written)
        return written.error();
    if (too_large)
        return Error::message("keys.json", "is larger than any keys.json posta-server writes", join(source, "keys.json"));
    if (::fsync(keys_out) < 0)
        return Error::from_errno("fsync", join(dir, "keys.json"));

    // The source must be what it claims before SQLite opens it (SQLite
    // refuses a symlink too, but would create a missing file).
    if (auto db_in = open_source(join(source, "inbox.db")); !db_in)
        return db_in.error();
    auto from = SqliteDb::open(join(source, "inbox.db"), SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW);
    if (!from)
        return from.error();
    // A reader waits only while a crashed writer's WAL is recovered.
    sqlite3_busy_timeout(from->get(), 5000);
    return backup_database(from.value(), to.value());
}

Result<std::string> backup(std::string const& slug, std::string const& dir, Config const& config)
{
    std::string source = config.state_dir + "/" + slug;
    auto owner = real_folder(source, "identity folder");
    if (!owner)
        return owner.error();

    // The copy is the operator's, made as whoever runs the command.
    auto opened = open_free_folder(dir, "backup folder");
    if (!opened)
        return opened.error();
    UniqueFd dir_fd = std::move(opened.value());
    Created created(dir_fd.get());
    auto keys_out = create_at(dir_fd.get(), dir, "keys.json", created);
    if (!keys_out)
        return keys_out.error();
    auto db_out = create_at(dir_fd.get(), dir, "inbox.db", created);
    if (!db_out)
        return db_out.error();
    if (auto copied = copy_as_owner(source, dir, owner.value(), keys_out->get()); !copied)
        return copied.error();
    if (::fsync(db_out->get()) < 0)
        return Error::from_errno("fsync", join(dir, "inbox.db"));
    if (::fsync(dir_fd.get()) < 0)
        return Error::from_errno("fsync", dir);
    created.keep();
    struct stat st {};
    ::fstat(db_out->get(), &st);
    return std::to_string(st.st_size);
}

// Whether the running daemon serves `slug`: its pid if so, 0 if not or if
// no daemon runs.
Result<int> served_by(std::string const& slug, std::string const& control_socket)
{
    auto answer = ask_daemon(control_socket, "status", std::chrono::milliseconds(5000));
    if (!answer) {
        if (no_daemon(answer.error()))
            return 0;
        return Error::message("refused", "cannot ask the running daemon whether it serves " + slug + ": "
            + answer.error().text() + " (run this as root or as the daemon's user)");
    }
    auto doc = nlohmann::json::parse(answer.value(), nullptr, false);
    if (!doc.is_object() || !doc["identities"].is_array())
        return Error::message("refused", "unreadable status answer", control_socket);
    for (auto const& identity : doc["identities"]) {
        if (identity.is_object() && identity.value("slug", "") == slug)
            return doc.value("pid", -1);
    }
    return 0;
}

Result<std::string> restore(std::string const& slug, std::string const& dir, Config const& config)
{
    // The copy: both files, whole (a -wal beside it would hold part of the
    // database), and a database that SQLite finds sound, read in place.
    UniqueFd in[identity_files.size()];
    for (size_t i = 0; i < identity_files.size(); ++i) {
        auto opened = open_source(join(dir, identity_files[i]));
        if (!opened)
            return opened.error();
        in[i] = std::move(opened.value());
    }
    struct stat wal {};
    if (::lstat(join(dir, "inbox.db-wal").c_str(), &wal) == 0 && wal.st_size > 0)
        return Error::message("refused", "is beside the backup and holds part of its database; open the backup "
            "once with sqlite3 (which folds it in), then restore", join(dir, "inbox.db-wal"));
    {
        auto check = SqliteDb::open("file:" + uri_path(join(dir, "inbox.db")) + "?immutable=1",
            SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOFOLLOW);
        if (!check)
            return check.error();
        auto stmt = check->prepare("PRAGMA quick_check");
        if (!stmt)
            return stmt.error();
        auto row = stmt->step();
        if (!row)
            return row.error();
        if (!row.value() || stmt->column_text(0) != "ok")
            return Error::message("refused", "is damaged (PRAGMA quick_check: "
                + std::string(row.value() ? stmt->column_text(0) : "no answer") + ")", join(dir, "inbox.db"));
    }

    if (auto pid = served_by(slug, config.control_socket); !pid)
        return pid.error();
    else if (pid.value() != 0)
        return Error::message("refused", "the running daemon (pid " + std::to_string(pid.value()) + ") serves "
            + slug + "; restore only an identity it does not serve: remove it from the manifest and reload "
            "(SIGHUP) first, then add it back after the restore");

    // What is written belongs to the state folder's owner, the daemon's user.
    auto owner = real_folder(config.state_dir, "state_dir");
    if (!owner) {
        if (owner.error().is(ErrorDomain::Errno, ENOENT))
            return Error::message("state_dir", "does not exist; start the daemon once (it creates it), or create "
                "it owned by the user the daemon runs as", config.state_dir);
        return owner.error();
    }
    auto as = ActingAs::owner_of(owner.value());
    if (!as)
        return as.error();
    std::string target = config.state_dir + "/" + slug;
    auto opened = open_free_folder(target, "identity folder");
    if (!opened)
        return opened.error();
    UniqueFd target_fd = std::move(opened.value());

    // Each file under a name of its own first, then moved to its own name
    // only if that is still free: the database before the keys, so that a
    // worker never finds a keys.json without its inbox.db.
    Created created(target_fd.get());
    std::string temporary[identity_files.size()];
    for (size_t i = 0; i < identity_files.size(); ++i) {
        temporary[i] = std::string(".restoring.") + identity_files[i];
        auto out = create_at(target_fd.get(), target, temporary[i].c_str(), created);
        if (!out)
            return out.error();
        if (auto copied = copy_file(in[i].get(), out->get(), join(target, temporary[i].c_str())); !copied)
            return copied.error();
    }
    for (size_t i = identity_files.size(); i-- > 0;) {
        if (::renameat2(target_fd.get(), temporary[i].c_str(), target_fd.get(), identity_files[i], RENAME_NOREPLACE) < 0)
            return Error::from_errno("rename", join(target, identity_files[i]));
        created.add(identity_files[i]);
    }
    if (::fsync(target_fd.get()) < 0)
        return Error::from_errno("fsync", target);
    created.keep();
    return target;
}

}

namespace {

// The two commands' shared frame: the config, the slug, one line either way.
// `copy` returns what the success line says after "SLUG: ".
template<typename Copy>
int run_copy(char const* command, std::string const& slug, std::string const& config_path, Copy copy)
{
    auto config = load_config_or_fail(config_path);
    Result<std::string> done = !config ? Result<std::string>(config.error())
        : !valid_slug(slug)
        ? Result<std::string>(Error::message("slug", "is not one (a-z, 0-9 and -, at most 63)", "\"" + slug + "\""))
        : copy(config.value());
    if (!done) {
        std::fprintf(stderr, "posta-server %s: %s: %s\n", command, slug.c_str(), done.error().text().c_str());
        return 1;
    }
    std::printf("posta-server %s: %s: %s\n", command, slug.c_str(), done->c_str());
    return 0;
}

}

int run_backup_command(std::string const& slug, std::string const& dir, std::string const& config_path)
{
    return run_copy("backup", slug, config_path, [&](Config const& config) -> Result<std::string> {
        auto size = backup(slug, dir, config);
        if (!size)
            return size.error();
        return "keys.json and inbox.db (" + size.value() + " bytes) copied to " + dir;
    });
}

int run_restore_command(std::string const& slug, std::string const& dir, std::string const& config_path)
{
    return run_copy("restore", slug, config_path, [&](Config const& config) -> Result<std::string> {
        auto target = restore(slug, dir, config);
        if (!target)
            return target.error();
        return "keys.json and inbox.db copied from " + dir + " to " + target.value() + "; add " + slug
            + " to the manifest and reload (SIGHUP) to serve it";
    });
}

}
