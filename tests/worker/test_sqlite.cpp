// The SQLite owners' error reading: a busy database is told by the domain and
// the primary code of a SQLite error, never by a bare number that an errno
// or a libuv code could share.
#include "support/test_support.h"
#include "worker/sqlite.h"

#include <cerrno>
#include <doctest/doctest.h>

using namespace posta;
using namespace posta::test;

TEST_CASE("a write while another connection holds the write lock is a busy database")
{
    TempDir tmp;
    std::string path = tmp.path() + "/busy.db";
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    auto holder = SqliteDb::open(path, flags);
    REQUIRE_MESSAGE(holder.ok(), holder.error().text());
    REQUIRE(holder->exec("CREATE TABLE t (x INTEGER)").ok());
    auto other = SqliteDb::open(path, flags);
    REQUIRE_MESSAGE(other.ok(), other.error().text());

    REQUIRE(holder->exec("BEGIN IMMEDIATE").ok());
    auto refused = other->exec("INSERT INTO t VALUES (1)");
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().domain == ErrorDomain::Sqlite);
    CHECK(is_sqlite_busy(refused.error()));
    REQUIRE(holder->exec("COMMIT").ok());
    CHECK(other->exec("INSERT INTO t VALUES (1)").ok());
}

TEST_CASE("an I/O error from the system is not a busy database, though EIO and SQLITE_BUSY are both 5")
{
    static_assert(EIO == SQLITE_BUSY);
    errno = EIO;
    Error io = Error::from_errno("read", "inbox.db");
    CHECK_FALSE(is_sqlite_busy(io));
    CHECK(is_sqlite_busy(Error { ErrorDomain::Sqlite, SQLITE_BUSY, "sqlite3_step", "database is locked" }));
    CHECK(is_sqlite_busy(Error { ErrorDomain::Sqlite, SQLITE_BUSY_SNAPSHOT, "sqlite3_step", "database is locked" }));
    CHECK(is_sqlite_busy(Error { ErrorDomain::Sqlite, SQLITE_LOCKED_SHAREDCACHE, "sqlite3_step", "locked" }));
    CHECK_FALSE(is_sqlite_busy(Error { ErrorDomain::Sqlite, SQLITE_IOERR_READ, "sqlite3_step", "disk I/O error" }));
    CHECK_FALSE(is_sqlite_busy(Error::message("sqlite3_step", "disk I/O error")));
}
