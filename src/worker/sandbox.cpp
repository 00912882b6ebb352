// Landlock is used through its system calls: Debian 12's headers predate the
// ABI versions this code can use (scopes are ABI 6), so the few constants
// and the ruleset attribute layout of newer versions are spelled out here.
// Refs: Documentation/userspace-api/landlock.rst in the Linux tree.
#include "sandbox.h"

#include "common/fd_io.h"
#include "common/unique_fd.h"

#include <seccomp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdint>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <optional>
#include <unistd.h>
#include <vector>

namespace posta {

namespace {

// Filesystem access rights (linux/landlock.h's LANDLOCK_ACCESS_FS_*), by the
// ABI version that introduced them. ABI 1 has bits 0 to 12: execute,
// write_file, read_file, read_dir, remove_dir, remove_file, then make_char,
// make_dir, make_reg, make_sock, make_fifo, make_block and make_sym.
constexpr uint64_t fs_execute = 1ULL << 0;
constexpr uint64_t fs_write_file = 1ULL << 1;
constexpr uint64_t fs_read_file = 1ULL << 2;
constexpr uint64_t fs_read_dir = 1ULL << 3;
constexpr uint64_t fs_abi1_rights = (1ULL << 13) - 1;
constexpr uint64_t fs_refer = 1ULL << 13;     // ABI 2
constexpr uint64_t fs_truncate = 1ULL << 14;  // ABI 3
constexpr uint64_t fs_ioctl_dev = 1ULL << 15; // ABI 5
constexpr uint64_t scope_abstract_unix_socket = 1ULL << 0; // ABI 6
constexpr uint64_t scope_signal = 1ULL << 1;               // ABI 6

constexpr uint32_t create_ruleset_version = 1U << 0;
constexpr int rule_path_beneath = 1;

struct RulesetAttr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; // ABI 4
    uint64_t scoped;             // ABI 6
};

struct __attribute__((packed)) PathBeneathAttr {
    uint64_t allowed_access;
    int32_t parent_fd;
};

uint64_t fs_rights_of(int abi)
{
    uint64_t rights = fs_abi1_rights;
    if (abi >= 2)
        rights |= fs_refer;
    if (abi >= 3)
        rights |= fs_truncate;
    if (abi >= 5)
        rights |= fs_ioctl_dev;
    return rights;
}

// Read-only paths a worker may need after start: name resolution for
// outbound deliveries and key fetches (NSS may load its modules late), TLS
// trust anchors, time zone data. Paths missing on this machine are skipped.
constexpr char const* read_only_paths[] = {
    "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
    "/etc/ssl", "/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/lib/ssl",
    "/etc/localtime", "/usr/share/zoneinfo",
    "/lib", "/lib64", "/usr/lib", "/usr/lib64",
    "/dev/null", "/dev/urandom",
};

Result<void> add_rule(int ruleset, char const* path, uint64_t access)
{
    UniqueFd fd(::open(path, O_PATH | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT)
            return {};
        return Error::from_errno("open O_PATH", path);
    }
    // A rule on a file (not a directory) may only grant file rights.
    struct stat st {};
    if (::fstat(fd.get(), &st) == 0 && !S_ISDIR(st.st_mode))
        access &= fs_execute | fs_write_file | fs_read_file | fs_truncate | fs_ioctl_dev;
    PathBeneathAttr attr { access, fd.get() };
    if (::syscall(SYS_landlock_add_rule, ruleset, rule_path_beneath, &attr, 0) < 0)
        return Error::from_errno("landlock_add_rule", path);
    return {};
}

// The system calls a serving worker makes: its event loop, sockets it was
// given or opens for deliveries and key fetches, SQLite on its own files,
// libcurl's resolver threads, libsodium's randomness, glibc's internals.
// Everything else kills the process (the supervisor logs "killed by signal
// 31 (SYS)" and restarts it). Names unknown to this libseccomp are skipped.
constexpr char const* allowed_syscalls[] = {
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "membarrier",
    // event loop and descriptors
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select",
    "pselect6", "eventfd2", "pipe2", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl",
    "read", "readv", "write", "writev", "pread64", "pwrite64", "preadv", "pwritev", "lseek",
    // sockets: passed connections, the channel, outbound HTTP, DNS
    // (socketpair: libcurl's multi wakeup pair and its resolver threads' signal)
    "socket", "socketpair", "connect", "getsockname", "getpeername", "setsockopt", "getsockopt", "sendto",
    "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "accept4", "bind",
    // files in the identity folder and the read-only ones (Landlock decides which)
    "openat", "open", "stat", "fstat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
    "readlink", "readlinkat", "getdents64", "fsync", "fdatasync", "ftruncate", "fallocate", "unlink",
    "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "fchmod", "fchown", "flock",
    "getcwd", "umask", "statfs", "fstatfs",
    // time and randomness
    "clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "nanosleep", "time", "getrandom",
    "timerfd_create", "timerfd_settime", "timerfd_gettime",
    // signals (Landlock scopes keep them inside this worker)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "sigaltstack",
    "kill", "tgkill", "tkill", "restart_syscall",
    // threads (libcurl's resolver) and process basics
    "clone", "clone3", "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
    "sched_yield", "sched_getaffinity", "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid",
    "getegid", "getgroups", "getresuid", "getresgid", "uname", "sysinfo", "prctl", "arch_prctl",
    "getrlimit", "prlimit64", "getrusage", "exit", "exit_group", "wait4",
};

// The allowlist as a BPF program, compiled by libseccomp. Compiling it is
// most of what installing the filter costs, and it is the same for every
// worker, so the worker template compiles it once (prepare_sandbox) and each
// worker it forks loads the copy it inherited.
Result<std::vector<sock_filter>> compile_seccomp()
{
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!filter)
        return Error::message("seccomp_init", "cannot create a filter");
    auto release = [&] { seccomp_release(filter); };
    for (char const* name : allowed_syscalls) {
        int number = seccomp_syscall_resolve_name(name);
        if (number == __NR_SCMP_ERROR)
            continue;
        if (int rc = seccomp_rule_add(filter, SCMP_ACT_ALLOW, number, 0); rc < 0) {
            release();
            return Error::from_errno_code(-rc, "seccomp_rule_add", name);
        }
    }
    // libseccomp 2.5 exports to a descriptor only; the program is a few KiB,
    // well within a pipe's buffer.
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) < 0) {
        release();
        return Error::from_errno("pipe2", "seccomp program");
    }
    UniqueFd out(ends[0]);
    UniqueFd in(ends[1]);
    int rc = seccomp_export_bpf(filter, in.get());
    release();
    in.reset();
    if (rc < 0)
        return Error::from_errno_code(-rc, "seccomp_export_bpf", {});
    auto bytes = read_all(out.get(), "seccomp program");
    if (!bytes)
        return bytes.error();
    if (bytes->size() % sizeof(sock_filter) != 0)
        return Error::message("seccomp_export_bpf", "a program of partial instructions");
    std::vector<sock_filter> program(bytes->size() / sizeof(sock_filter));
    std::memcpy(program.data(), bytes->data(), bytes->size());
    if (program.empty())
        return Error::message("seccomp_export_bpf", "an empty program");
    return program;
}

std::optional<std::vector<sock_filter>>& prepared_seccomp()
{
    static std::optional<std::vector<sock_filter>> program;
    return program;
}

// Needs no_new_privs, set before (forbid_new_privileges).
Result<void> install_seccomp()
{
    if (auto prepared = prepare_sandbox(); !prepared)
        return prepared.error();
    std::vector<sock_filter>& program = *prepared_seccomp();
    sock_fprog prog { static_cast<unsigned short>(program.size()), program.data() };
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return Error::from_errno("seccomp", "SECCOMP_SET_MODE_FILTER");
    return {};
}

}

Result<void> prepare_sandbox()
{
    if (prepared_seccomp())
        return {};
    auto compiled = compile_seccomp();
    if (!compiled)
        return compiled.error();
    prepared_seccomp() = std::move(compiled.value());
    return {};
}

namespace {

Result<void> limit_resources()
{
    // A worker's memory holds its secret key: it never dumps core.
    rlimit no_core { 0, 0 };
    if (::setrlimit(RLIMIT_CORE, &no_core) < 0)
        return Error::from_errno("setrlimit RLIMIT_CORE");
    if (::prctl(PR_SET_DUMPABLE, 0) < 0)
        return Error::from_errno("prctl PR_SET_DUMPABLE");
    return {};
}

}

std::string SandboxReport::text() const
{
    std::string out = "no new privileges, no core dumps";
    if (seccomp)
        out += ", seccomp system call allowlist";
    if (landlock_abi == 0)
        return out + "; this kernel has no Landlock, so the filesystem is NOT restricted";
    return out + ", Landlock ABI " + std::to_string(landlock_abi)
        + " (own state folder read-write, system files read-only, no execution"
        + (signals_scoped ? ", no signals or abstract sockets outside this worker)" : ")");
}

namespace {

// Required by Landlock and seccomp for an unprivileged process, and what
// makes a setuid program useless to a compromised worker.
Result<void> forbid_new_privileges()
{
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return Error::from_errno("prctl PR_SET_NO_NEW_PRIVS");
    return {};
}

// Landlock where the kernel has it: the identity's folder, and the
// read-only paths above. Needs no_new_privs.
Result<SandboxReport> restrict_filesystem(std::string const& identity_dir)
{
    SandboxReport report;
    long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, create_ruleset_version);
    if (abi < 0) {
        if (errno == ENOSYS || errno == EOPNOTSUPP)
            return report; // no Landlock here: the caller warns once
        return Error::from_errno("landlock_create_ruleset", "version probe");
    }
    report.landlock_abi = static_cast<int>(abi);

    RulesetAttr attr {};
    attr.handled_access_fs = fs_rights_of(report.landlock_abi);
    size_t attr_size = sizeof(uint64_t);
    if (report.landlock_abi >= 6) {
        attr.scoped = scope_abstract_unix_socket | scope_signal;
        attr_size = sizeof attr;
        report.signals_scoped = true;
    }
    UniqueFd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0)));
    if (!ruleset)
        return Error::from_errno("landlock_create_ruleset");

    uint64_t all_but_execute = attr.handled_access_fs & ~fs_execute;
    if (auto added = add_rule(ruleset.get(), identity_dir.c_str(), all_but_execute); !added)
        return added.error();
    for (char const* path : read_only_paths) {
        if (auto added = add_rule(ruleset.get(), path, fs_read_file | fs_read_dir); !added)
            return added.error();
    }
    if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) < 0)
        return Error::from_errno("landlock_restrict_self");
    return report;
}

}

Result<size_t> limit_open_files(size_t wanted)
{
    rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) < 0)
        return Error::from_errno("getrlimit RLIMIT_NOFILE");
    rlim_t value = std::min<rlim_t>(static_cast<rlim_t>(wanted), limit.rlim_max);
    limit = { value, value };
    if (::setrlimit(RLIMIT_NOFILE, &limit) < 0)
        return Error::from_errno("setrlimit RLIMIT_NOFILE");
    return static_cast<size_t>(value);
}

Result<SandboxReport> apply_sandbox(std::string const& identity_dir)
{
    if (auto limited = limit_resources(); !limited)
        return limited.error();
    if (auto forbidden = forbid_new_privileges(); !forbidden)
        return forbidden.error();
    auto report = restrict_filesystem(identity_dir);
    if (!report)
        return report;
    // Last: from here on only the allowed system calls exist.
    if (auto installed = install_seccomp(); !installed)
        return installed.error();
    report->seccomp = true;
    return report;
}

}
