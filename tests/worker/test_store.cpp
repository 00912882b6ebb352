// inbox.db: created 0600 in WAL mode at the latest schema, reopened without
// change, and refused when its schema is newer than the code.
#include "test_support.h"
#include "worker/sqlite.h"
#include "worker/store.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

using namespace posta;
using namespace posta::test;

namespace {

std::string query_text(SqliteDb& db, char const* sql)
{
    auto stmt = db.prepare(sql);
    REQUIRE_MESSAGE(stmt.ok(), stmt.error().text());
    auto row = stmt->step();
    REQUIRE(row.ok());
    REQUIRE(row.value());
    return std::string(stmt->column_text(0));
}

int64_t query_int(SqliteDb& db, char const* sql)
{
    auto stmt = db.prepare(sql);
    REQUIRE_MESSAGE(stmt.ok(), stmt.error().text());
    auto row = stmt->step();
    REQUIRE(row.ok());
    REQUIRE(row.value());
    return stmt->column_int64(0);
}

}

TEST_CASE("a new inbox.db is created 0600, in WAL mode, at the latest schema version")
{
    TempDir tmp;
    auto store = Store::open(tmp.path());
    REQUIRE_MESSAGE(store.ok(), store.error().text());
    CHECK(file_mode(tmp.path() + "/inbox.db") == 0600);
    auto version = store->user_version();
    REQUIRE(version.ok());
    CHECK(version.value() == Store::latest_version());
    CHECK(Store::latest_version() >= 1);
    CHECK(query_text(store->db(), "PRAGMA journal_mode") == "wal");
    CHECK(query_int(store->db(), "PRAGMA synchronous") == 2); // FULL
    CHECK(query_int(store->db(), "PRAGMA foreign_keys") == 1);
    CHECK(query_int(store->db(), "PRAGMA busy_timeout") == 5000);
    for (char const* table : { "messages", "deliveries", "peers", "api_tokens", "events" }) {
        std::string sql = std::string("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '") + table + "'";
        CHECK_MESSAGE(query_int(store->db(), sql.c_str()) == 1, table);
    }
}

TEST_CASE("reopening inbox.db keeps its data and version")
{
    TempDir tmp;
    {
        auto store = Store::open(tmp.path());
        REQUIRE(store.ok());
        REQUIRE(store->db().exec("INSERT INTO peers (url, public_key, inbox, fetched_at) "
                                 "VALUES ('http://b.test', 'k', 'http://b.test/inbox', 1)").ok());
        REQUIRE(store->checkpoint().ok());
    }
    auto store = Store::open(tmp.path());
    REQUIRE_MESSAGE(store.ok(), store.error().text());
    CHECK(store->user_version().value() == Store::latest_version());
    CHECK(query_int(store->db(), "SELECT count(*) FROM peers") == 1);
}

TEST_CASE("(box, sender, id) of a message is unique, so redeliveries are duplicates")
{
    TempDir tmp;
    auto store = Store::open(tmp.path());
    REQUIRE(store.ok());
    char const* insert = "INSERT INTO messages (box, sender, id, sent_at, received_at) "
                         "VALUES ('inbox', 'http://b.test', 'AAAA', '2026-11-27T09:00:00Z', 1)";
    REQUIRE(store->db().exec(insert).ok());
    REQUIRE(store->db().exec("UPDATE messages SET deleted = 1, body = ''").ok());
    auto again = store->db().exec(insert);
    REQUIRE(!again.ok());
    CHECK(again.error().code == SQLITE_CONSTRAINT_UNIQUE);
}

TEST_CASE("event sequence numbers are never reused")
{
    TempDir tmp;
    auto store = Store::open(tmp.path());
    REQUIRE(store.ok());
    auto& db = store->db();
    REQUIRE(db.exec("INSERT INTO events (type, data, created_at) VALUES ('t', '{}', 1), ('t', '{}', 2)").ok());
    REQUIRE(db.exec("DELETE FROM events").ok());
    REQUIRE(db.exec("INSERT INTO events (type, data, created_at) VALUES ('t', '{}', 3)").ok());
    CHECK(query_int(db, "SELECT seq FROM events") == 3);
}

TEST_CASE("an inbox.db with a newer schema than the code knows is refused, naming the file")
{
    TempDir tmp;
    {
        auto store = Store::open(tmp.path());
        REQUIRE(store.ok());
        std::string sql = "PRAGMA user_version = " + std::to_string(Store::latest_version() + 1);
        REQUIRE(store->db().exec(sql.c_str()).ok());
    }
    auto store = Store::open(tmp.path());
    REQUIRE(!store.ok());
    std::string text = store.error().text();
    CHECK(text.find(tmp.path() + "/inbox.db") != std::string::npos);
    CHECK(text.find("newer") != std::string::npos);
}

TEST_CASE("a file that is not a database is refused, naming the file")
{
    TempDir tmp;
    write_file(tmp.path() + "/inbox.db", std::string(4096, 'x'), 0600);
    auto store = Store::open(tmp.path());
    REQUIRE(!store.ok());
    CHECK(store.error().text().find(tmp.path() + "/inbox.db") != std::string::npos);
}

TEST_CASE("a checkpoint empties the WAL")
{
    TempDir tmp;
    auto store = Store::open(tmp.path());
    REQUIRE(store.ok());
    REQUIRE(store->db().exec("INSERT INTO events (type, data, created_at) VALUES ('t', '{}', 1)").ok());
    REQUIRE(store->checkpoint().ok());
    struct stat st {};
    REQUIRE(::stat((tmp.path() + "/inbox.db-wal").c_str(), &st) == 0);
    CHECK(st.st_size == 0);
}
