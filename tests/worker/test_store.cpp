// inbox.db: created 0600 in WAL mode at the latest schema, reopened without
// change, refused when its schema is newer than the code, migrated from
// every earlier version; and the Store's queries: inbound dedupe (also of
// tombstones) and group commit, the peer cache, the owner API's messages and
// deliveries, tokens, sign-in codes and sessions, the event log.
#include "support/test_support.h"
#include "protocol/api_token.h"
#include "worker/event_sink.h"
#include "worker/message_json.h"
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
    CHECK(query_int(store->db(), "PRAGMA temp_store") == 2); // MEMORY: no files outside the folder
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
    CHECK(again.error().is(ErrorDomain::Sqlite, SQLITE_CONSTRAINT_UNIQUE));
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

// -- Migrations ------------------------------------------------------------

namespace {

// The schema as SQLite keeps it: every table's and index's CREATE text.
std::vector<std::string> schema_of(SqliteDb& db)
{
    auto stmt = db.prepare("SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master "
                           "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name");
    REQUIRE(stmt.ok());
    std::vector<std::string> out;
    while (true) {
        auto row = stmt->step();
        REQUIRE(row.ok());
        if (!row.value())
            return out;
        out.emplace_back(stmt->column_text(0));
    }
}

}

TEST_CASE("an empty inbox.db file is migrated to the latest schema")
{
    TempDir tmp;
    write_file(tmp.path() + "/inbox.db", "", 0600);
    auto store = Store::open(tmp.path());
    REQUIRE_MESSAGE(store.ok(), store.error().text());
    CHECK(store->user_version().value() == Store::latest_version());
    TempDir fresh_dir;
    auto fresh = Store::open(fresh_dir.path());
    REQUIRE(fresh.ok());
    CHECK(schema_of(store->db()) == schema_of(fresh->db()));
}

TEST_CASE("an inbox.db at each earlier schema version is migrated to the latest, keeping its rows")
{
    TempDir fresh_dir;
    auto fresh = Store::open(fresh_dir.path());
    REQUIRE(fresh.ok());
    auto latest_schema = schema_of(fresh->db());

    for (int version = 0; version < Store::latest_version(); ++version) {
        CAPTURE(version);
        TempDir tmp;
        auto created = Store::create_at_version(tmp.path(), version);
        REQUIRE_MESSAGE(created.ok(), created.error().text());
        {
            auto db = SqliteDb::open(tmp.path() + "/inbox.db", SQLITE_OPEN_READWRITE);
            REQUIRE(db.ok());
            CHECK(query_int(db.value(), "PRAGMA user_version") == version);
            // Something of the operator's own that a migration must not lose.
            REQUIRE(db->exec("CREATE TABLE operator_notes (note TEXT); INSERT INTO operator_notes VALUES ('keep')").ok());
        }
        auto store = Store::open(tmp.path());
        REQUIRE_MESSAGE(store.ok(), store.error().text());
        CHECK(store->user_version().value() == Store::latest_version());
        CHECK(query_text(store->db(), "SELECT note FROM operator_notes") == "keep");
        REQUIRE(store->db().exec("DROP TABLE operator_notes").ok());
        CHECK(schema_of(store->db()) == latest_schema);
    }
}

TEST_CASE("a version 0 database left in rollback-journal mode is switched to WAL on open")
{
    TempDir tmp;
    {
        auto db = SqliteDb::open(tmp.path() + "/inbox.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(db.ok());
        REQUIRE(db->exec("PRAGMA journal_mode=DELETE; CREATE TABLE t (x); DROP TABLE t;").ok());
    }
    auto store = Store::open(tmp.path());
    REQUIRE_MESSAGE(store.ok(), store.error().text());
    CHECK(query_text(store->db(), "PRAGMA journal_mode") == "wal");
    CHECK(store->user_version().value() == Store::latest_version());
}

// -- Inbox -----------------------------------------------------------------

namespace {

constexpr int64_t t0 = 1795770000000; // 2026-11-27T09:00:00Z

InboundMessage inbound(std::string id, std::string from = "http://b.test")
{
    std::string body = "body of " + from;
    return InboundMessage { std::move(id), std::move(from), "http://a.test", "2026-11-27T09:00:00Z", "subject",
        "text/plain", std::move(body) };
}

// The worker's encoder, for the identity the inbound messages are to.
EventSink const events("http://a.test", {});

Store open_store(TempDir const& tmp)
{
    auto store = Store::open(tmp.path());
    REQUIRE_MESSAGE(store.ok(), store.error().text());
    return std::move(store.value());
}

std::vector<InboundOutcome> accept(Store& store, std::vector<InboundMessage> const& batch, int64_t at = t0)
{
    auto outcomes = store.accept_inbound(batch, at, events);
    REQUIRE_MESSAGE(outcomes.ok(), outcomes.error().text());
    REQUIRE(outcomes->size() == batch.size());
    return outcomes.value();
}

}

TEST_CASE("an accepted message is stored and published as message.received with the <message> object")
{
    TempDir tmp;
    Store store = open_store(tmp);
    auto outcomes = accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") });
    CHECK(!outcomes[0].duplicate);
    CHECK(outcomes[0].event.seq > 0);
    CHECK(outcomes[0].event.data
        == R"({"id":"AAAAAAAAAAAAAAAAAAAAAA","box":"inbox","from":"http://b.test","to":["http://a.test"],)"
           R"("subject":"subject","content_type":"text/plain","body":"body of http://b.test",)"
           R"("sent_at":"2026-11-27T09:00:00Z","received_at":"2026-11-27T09:00:00Z","read":false})");
    auto stored = store.events_after(0, 10);
    REQUIRE(stored.ok());
    REQUIRE(stored->size() == 1);
    CHECK(stored->at(0).seq == outcomes[0].event.seq);
    CHECK(stored->at(0).type == "message.received");
    CHECK(stored->at(0).data == outcomes[0].event.data);
    CHECK(stored->at(0).created_at_ms == t0);

    auto found = store.find_message({ "AAAAAAAAAAAAAAAAAAAAAA", std::nullopt, std::nullopt });
    REQUIRE(found.ok());
    REQUIRE(found->has_value());
    CHECK(found.value()->received_at_ms == t0);
    CHECK(found.value()->to.empty());
}

TEST_CASE("a redelivery of (from, id) is a duplicate and changes nothing; another sender's same id is not")
{
    TempDir tmp;
    Store store = open_store(tmp);
    accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") });
    auto again = accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") }, t0 + 1000);
    CHECK(again[0].duplicate);
    CHECK(again[0].event.seq == 0);
    CHECK(again[0].event.data.empty());
    auto other = accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA", "http://c.test") });
    CHECK(!other[0].duplicate);
    CHECK(query_int(store.db(), "SELECT count(*) FROM messages") == 2);
    CHECK(query_int(store.db(), "SELECT count(*) FROM events") == 2);
    CHECK(query_int(store.db(), "SELECT received_at FROM messages WHERE sender = 'http://b.test'") == t0);
}

TEST_CASE("a redelivery after the owner deleted the message is still a duplicate")
{
    TempDir tmp;
    Store store = open_store(tmp);
    accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") });
    auto deleted = store.delete_message({ "AAAAAAAAAAAAAAAAAAAAAA", std::nullopt, std::nullopt }, t0, events);
    REQUIRE(deleted.ok());
    CHECK(deleted->found);
    CHECK(query_text(store.db(), "SELECT body FROM messages") == "");
    auto again = accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") });
    CHECK(again[0].duplicate);
    auto found = store.find_message({ "AAAAAAAAAAAAAAAAAAAAAA", std::nullopt, std::nullopt });
    REQUIRE(found.ok());
    CHECK(!found->has_value());
    auto page = store.list_messages(Box::Inbox, 50, std::nullopt);
    REQUIRE(page.ok());
    CHECK(page->messages.empty());
}

TEST_CASE("a batch commits together, and a duplicate inside it is reported in its place")
{
    TempDir tmp;
    Store store = open_store(tmp);
    accept(store, { inbound("BBBBBBBBBBBBBBBBBBBBBB") });
    auto outcomes = accept(store,
        { inbound("AAAAAAAAAAAAAAAAAAAAAA"), inbound("BBBBBBBBBBBBBBBBBBBBBB"), inbound("AAAAAAAAAAAAAAAAAAAAAA"),
            inbound("CCCCCCCCCCCCCCCCCCCCCC") });
    CHECK(!outcomes[0].duplicate);
    CHECK(outcomes[1].duplicate);
    CHECK(outcomes[2].duplicate);
    CHECK(!outcomes[3].duplicate);
    CHECK(outcomes[3].event.seq == outcomes[0].event.seq + 1);
    CHECK(query_int(store.db(), "SELECT count(*) FROM messages") == 3);
}

TEST_CASE("a batch that fails is rolled back as a whole")
{
    TempDir tmp;
    Store store = open_store(tmp);
    // A trigger of the test's own makes the second insert fail.
    REQUIRE(store.db().exec("CREATE TRIGGER fail_c BEFORE INSERT ON messages WHEN NEW.id = 'CCCCCCCCCCCCCCCCCCCCCC' "
                            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END")
                .ok());
    auto outcomes = store.accept_inbound(
        std::vector { inbound("AAAAAAAAAAAAAAAAAAAAAA"), inbound("CCCCCCCCCCCCCCCCCCCCCC") }, t0, events);
    REQUIRE(!outcomes.ok());
    CHECK(outcomes.error().text().find("refused by test") != std::string::npos);
    CHECK(query_int(store.db(), "SELECT count(*) FROM messages") == 0);
    CHECK(query_int(store.db(), "SELECT count(*) FROM events") == 0);
    // The store is usable afterwards: no transaction was left open.
    accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") });
}

// -- Peer cache ------------------------------------------------------------

TEST_CASE("peers are upserted and a refetch mark survives a save that does not give one")
{
    TempDir tmp;
    Store store = open_store(tmp);
    auto none = store.find_peer("http://b.test");
    REQUIRE(none.ok());
    CHECK(!none->has_value());

    REQUIRE(store.save_peer({ "http://b.test", "key1", "B", "http://b.test/inbox", t0, std::nullopt }).ok());
    REQUIRE(store.mark_peer_refetched("http://b.test", t0 + 5).ok());
    REQUIRE(store.save_peer({ "http://b.test", "key2", "Bee", "http://b.test/inbox", t0 + 10, std::nullopt }).ok());
    auto peer = store.find_peer("http://b.test");
    REQUIRE(peer.ok());
    REQUIRE(peer->has_value());
    CHECK(peer.value()->public_key == "key2");
    CHECK(peer.value()->name == "Bee");
    CHECK(peer.value()->fetched_at_ms == t0 + 10);
    CHECK(peer.value()->refetched_at_ms == t0 + 5);

    REQUIRE(store.save_peer({ "http://b.test", "key3", "Bee", "http://b.test/inbox", t0 + 20, t0 + 20 }).ok());
    CHECK(store.find_peer("http://b.test").value().value().refetched_at_ms == t0 + 20);
    REQUIRE(store.mark_peer_refetched("http://unknown.test", t0).ok());
    CHECK(!store.find_peer("http://unknown.test").value().has_value());
}

// -- Owner API -------------------------------------------------------------

namespace {

StoredMessage send(Store& store, std::vector<std::string> to, std::string subject = "s", int64_t at = t0)
{
    OutgoingMessage message { "http://a.test", std::move(to), std::move(subject), "text/plain", "body" };
    auto stored = store.create_outgoing(message, at);
    REQUIRE_MESSAGE(stored.ok(), stored.error().text());
    return stored.value();
}

}

TEST_CASE("an outgoing message is stored in 'sent' with one queued delivery per recipient, in order")
{
    TempDir tmp;
    Store store = open_store(tmp);
    auto first = send(store, { "http://c.test", "http://b.test" });
    auto second = send(store, { "http://b.test" }, "s", t0 + 1000);
    CHECK(first.id.size() == 22);
    CHECK(first.id != second.id);
    CHECK(first.sent_at == "2026-11-27T09:00:00Z");

    auto found = store.find_message({ first.id, Box::Sent, std::nullopt });
    REQUIRE(found.ok());
    REQUIRE(found->has_value());
    CHECK(found.value()->to == std::vector<std::string> { "http://c.test", "http://b.test" });
    CHECK(found.value()->from == "http://a.test");
    CHECK(!found.value()->received_at_ms);

    auto deliveries = store.list_deliveries(DeliveryState::Queued);
    REQUIRE(deliveries.ok());
    REQUIRE(deliveries->size() == 3);
    CHECK(deliveries->at(0).message_id == first.id);
    CHECK(deliveries->at(0).to == "http://c.test");
    CHECK(deliveries->at(1).to == "http://b.test");
    CHECK(deliveries->at(2).message_id == second.id);
    CHECK(deliveries->at(0).next_attempt_at_ms == t0);
    CHECK(deliveries->at(0).attempts == 0);
    CHECK(!deliveries->at(0).last_status);
    CHECK(query_int(store.db(), "SELECT queued_at FROM deliveries WHERE message = 2") == t0 + 1000);
    CHECK(store.list_deliveries(DeliveryState::Delivered).value().empty());
    CHECK(store.list_deliveries(std::nullopt).value().size() == 3);
}

TEST_CASE("the queue's heads are ids and times; a message's content is read on its own")
{
    TempDir tmp;
    Store store = open_store(tmp);
    auto first = send(store, { "http://c.test", "http://b.test" }, "first");
    send(store, { "http://b.test" }, "second", t0 + 1000);
    auto heads = store.queue_heads();
    REQUIRE(heads.ok());
    REQUIRE(heads->size() == 2); // one per recipient: b's second waits behind its first
    for (auto const& head : heads.value()) {
        CHECK(head.message_seq == first.seq);
        CHECK(head.message_id == first.id);
        CHECK(head.next_attempt_at_ms == t0);
        CHECK(head.queued_at_ms == t0);
    }
    auto content = store.outgoing_content(first.seq);
    REQUIRE(content.ok());
    REQUIRE(content->has_value());
    CHECK(content.value()->subject == "first");
    CHECK(content.value()->body == "body");
    CHECK(content.value()->content_type == "text/plain");
    CHECK(content.value()->sent_at == first.sent_at);

    auto inbound_seq = accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") })[0].event.seq;
    CHECK(inbound_seq > 0);
    CHECK(!store.outgoing_content(3).value().has_value()); // seq 3 is the inbound one, not sent
    REQUIRE(store.delete_message({ first.id, Box::Sent, std::nullopt }, t0, events).value().found);
    CHECK(!store.outgoing_content(first.seq).value().has_value());
}

TEST_CASE("listing pages newest first through cursors, skipping the other box and tombstones")
{
    TempDir tmp;
    Store store = open_store(tmp);
    std::vector<std::string> ids;
    for (int i = 0; i < 7; ++i) {
        ids.push_back(send(store, { "http://b.test" }, "m" + std::to_string(i)).id);
        accept(store, { inbound(std::string(21, 'A') + static_cast<char>('a' + i)) });
    }
    REQUIRE(store.delete_message({ ids[3], Box::Sent, std::nullopt }, t0, events).value().found);

    std::vector<std::string> seen;
    std::optional<int64_t> before;
    int pages = 0;
    do {
        auto page = store.list_messages(Box::Sent, 3, before);
        REQUIRE(page.ok());
        ++pages;
        for (auto const& message : page->messages) {
            CHECK(message.box == Box::Sent);
            CHECK(message.to == std::vector<std::string> { "http://b.test" });
            seen.push_back(message.id);
        }
        before = page->next_before;
    } while (before);
    CHECK(pages == 2);
    CHECK(seen == std::vector<std::string> { ids[6], ids[5], ids[4], ids[2], ids[1], ids[0] });

    auto exact = store.list_messages(Box::Inbox, 7, std::nullopt);
    REQUIRE(exact.ok());
    CHECK(exact->messages.size() == 7);
    CHECK(!exact->next_before);
}

TEST_CASE("a page stops at the byte budget before the limit, and its cursor continues after its last message")
{
    TempDir tmp;
    Store store = open_store(tmp);
    std::vector<int64_t> seqs;
    for (int i = 0; i < 5; ++i) {
        OutgoingMessage message { "http://a.test", { "http://b.test" }, "s", "text/plain", std::string(1000, 'x') };
        seqs.push_back(store.create_outgoing(message, t0).value().seq);
    }
    // 1001 bytes of content each: two fit in 2500, a third does not.
    auto page = store.list_messages(Box::Sent, 50, std::nullopt, 2500);
    REQUIRE(page.ok());
    REQUIRE(page->messages.size() == 2);
    CHECK(page->messages[0].seq == seqs[4]);
    CHECK(page->next_before == seqs[3]);
    auto rest = store.list_messages(Box::Sent, 50, page->next_before, 2500);
    REQUIRE(rest.ok());
    CHECK(rest->messages.size() == 2);
    CHECK(rest->messages[0].seq == seqs[2]);
    // A message larger than the budget is a page of its own.
    auto alone = store.list_messages(Box::Sent, 50, std::nullopt, 10);
    REQUIRE(alone.ok());
    CHECK(alone->messages.size() == 1);
    CHECK(alone->next_before == seqs[4]);
    // The limit still ends a page whose content fits.
    auto limited = store.list_messages(Box::Sent, 2, std::nullopt, 1 << 20);
    CHECK(limited.value().messages.size() == 2);
    CHECK(limited.value().next_before == seqs[3]);
}

TEST_CASE("the cursor round-trips and refuses what it did not write")
{
    for (int64_t seq : { int64_t { 1 }, int64_t { 255 }, int64_t { 1 } << 40, INT64_MAX })
        CHECK(decode_cursor(encode_cursor(seq)) == seq);
    CHECK(!decode_cursor(""));
    CHECK(!decode_cursor("12"));
    CHECK(!decode_cursor(encode_cursor(1) + "A"));
    CHECK(!decode_cursor(encode_cursor(0)));
    CHECK(!decode_cursor(encode_cursor(-1)));
}

TEST_CASE("an id in both boxes means the first stored message unless box or from narrows it")
{
    TempDir tmp;
    Store store = open_store(tmp);
    // A message to oneself: the sent copy comes first, the delivered one later.
    auto sent = send(store, { "http://a.test" });
    accept(store, { inbound(sent.id, "http://a.test") });

    auto plain = store.find_message({ sent.id, std::nullopt, std::nullopt });
    REQUIRE(plain.ok());
    CHECK(plain.value()->box == Box::Sent);
    auto in_inbox = store.find_message({ sent.id, Box::Inbox, std::nullopt });
    CHECK(in_inbox.value()->box == Box::Inbox);
    CHECK(!store.find_message({ sent.id, Box::Inbox, "http://b.test" }).value().has_value());

    auto read = store.set_read({ sent.id, Box::Inbox, std::nullopt }, true);
    REQUIRE(read.ok());
    CHECK(read.value()->read);
    CHECK(read.value()->box == Box::Inbox);

    REQUIRE(store.delete_message({ sent.id, std::nullopt, std::nullopt }, t0, events).value().found);
    // The sent copy is gone; the inbox copy now answers.
    CHECK(store.find_message({ sent.id, std::nullopt, std::nullopt }).value().value().box == Box::Inbox);
}

TEST_CASE("read is set and cleared; unknown ids are not found")
{
    TempDir tmp;
    Store store = open_store(tmp);
    accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") });
    MessageKey key { "AAAAAAAAAAAAAAAAAAAAAA", std::nullopt, std::nullopt };
    CHECK(!store.find_message(key).value().value().read);
    CHECK(store.set_read(key, true).value().value().read);
    CHECK(store.find_message(key).value().value().read);
    CHECK(!store.set_read(key, false).value().value().read);
    MessageKey unknown { "BBBBBBBBBBBBBBBBBBBBBB", std::nullopt, std::nullopt };
    CHECK(!store.set_read(unknown, true).value().has_value());
    CHECK(!store.delete_message(unknown, t0, events).value().found);
}

TEST_CASE("deleting an inbound message redacts its message.received event, keeping its seq and type")
{
    TempDir tmp;
    Store store = open_store(tmp);
    auto kept = accept(store, { inbound("BBBBBBBBBBBBBBBBBBBBBB") });
    auto gone = accept(store, { inbound("AAAAAAAAAAAAAAAAAAAAAA") });
    REQUIRE(store.delete_message({ "AAAAAAAAAAAAAAAAAAAAAA", std::nullopt, std::nullopt }, t0, events).value().found);
    auto log = store.events_after(0, 10).value();
    REQUIRE(log.size() == 2);
    CHECK(log[0].data == kept[0].event.data);
    CHECK(log[1].seq == gone[0].event.seq);
    CHECK(log[1].type == "message.received");
    CHECK(log[1].data == R"({"id":"AAAAAAAAAAAAAAAAAAAAAA","box":"inbox","from":"http://b.test","deleted":true})");
    CHECK(query_int(store.db(), "PRAGMA secure_delete") == 1);
}

TEST_CASE("migrating to version 2 links message.received events to their messages and redacts deleted ones")
{
    TempDir tmp;
    REQUIRE(Store::create_at_version(tmp.path(), 1).ok());
    {
        auto db = SqliteDb::open(tmp.path() + "/inbox.db", SQLITE_OPEN_READWRITE);
        REQUIRE(db.ok());
        REQUIRE(db->exec("INSERT INTO messages (box, sender, id, subject, body, sent_at, received_at, deleted) VALUES "
                         "('inbox', 'http://b.test', 'AAAAAAAAAAAAAAAAAAAAAA', '', '', 't', 1, 1), "
                         "('inbox', 'http://b.test', 'BBBBBBBBBBBBBBBBBBBBBB', 's', 'kept body', 't', 1, 0); "
                         "INSERT INTO events (type, data, created_at) VALUES "
                         "('message.received', '{\"id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"box\":\"inbox\",\"from\":\"http://b.test\",\"body\":\"secret\"}', 1), "
                         "('message.received', '{\"id\":\"BBBBBBBBBBBBBBBBBBBBBB\",\"box\":\"inbox\",\"from\":\"http://b.test\",\"body\":\"kept body\"}', 1)")
                    .ok());
    }
    Store store = open_store(tmp);
    CHECK(query_int(store.db(), "SELECT count(*) FROM events WHERE message IS NOT NULL") == 2);
    CHECK(query_text(store.db(), "SELECT data FROM events WHERE seq = 1")
        == R"({"id":"AAAAAAAAAAAAAAAAAAAAAA","box":"inbox","from":"http://b.test","deleted":true})");
    CHECK(query_text(store.db(), "SELECT data FROM events WHERE seq = 2").find("kept body") != std::string::npos);
}

TEST_CASE("deleting a sent message cancels its queued deliveries and publishes delivery.updated")
{
    TempDir tmp;
    Store store = open_store(tmp);
    auto sent = send(store, { "http://b.test", "http://c.test" });
    REQUIRE(store.db().exec("UPDATE deliveries SET state = 'delivered', next_attempt_at = NULL "
                            "WHERE recipient = 'http://b.test'")
                .ok());
    auto deleted = store.delete_message({ sent.id, std::nullopt, std::nullopt }, t0 + 5, events);
    REQUIRE(deleted.ok());
    CHECK(deleted->found);
    REQUIRE(deleted->events.size() == 1);
    CHECK(deleted->events[0].type == "delivery.updated");
    CHECK(deleted->events[0].seq > 0);
    CHECK(deleted->events[0].data
        == R"({"message_id":")" + sent.id + R"(","to":"http://c.test","state":"failed","attempts":0,)"
            R"("next_attempt_at":null,"last_status":null,)"
            R"("last_error":"the message was deleted before it was delivered"})");
    auto deliveries = store.list_deliveries(std::nullopt).value();
    REQUIRE(deliveries.size() == 2);
    CHECK(deliveries[0].state == DeliveryState::Delivered);
    CHECK(deliveries[1].state == DeliveryState::Failed);
}

// -- Tokens ----------------------------------------------------------------

TEST_CASE("a token verifies by its hash only, and only in the store it was added to")
{
    TempDir tmp;
    TempDir other_dir;
    Store store = open_store(tmp);
    Store other = open_store(other_dir);
    std::string token = make_api_token();
    CHECK(token.starts_with("posta_"));
    CHECK(token.size() == 49);
    CHECK(make_api_token() != token);
    REQUIRE(store.add_token(hash_api_token(token), t0).ok());

    CHECK(store.verify_token(hash_api_token(token), t0).value());
    CHECK(!store.verify_token(hash_api_token(token + "x"), t0).value());
    CHECK(!store.verify_token(hash_api_token(""), t0).value());
    CHECK(!other.verify_token(hash_api_token(token), t0).value());
    // Only the 32-byte hash is kept.
    CHECK(query_int(store.db(), "SELECT count(*) FROM api_tokens WHERE typeof(hash) = 'blob' AND length(hash) = 32") == 1);
    CHECK(query_int(store.db(), "SELECT last_used_at FROM api_tokens") == t0);
    // Use is noted at most once an hour.
    CHECK(store.verify_token(hash_api_token(token), t0 + 60'000).value());
    CHECK(query_int(store.db(), "SELECT last_used_at FROM api_tokens") == t0);
    CHECK(store.verify_token(hash_api_token(token), t0 + 3'600'000).value());
    CHECK(query_int(store.db(), "SELECT last_used_at FROM api_tokens") == t0 + 3'600'000);
}

// -- Sign-in codes and sessions ---------------------------------------------

namespace {

constexpr int64_t minute_ms = 60'000;
constexpr int64_t day_ms = 24 * 60 * minute_ms;

SessionRecord session_record(std::string id, int64_t created_at, int64_t lifetime = 30 * day_ms)
{
    return SessionRecord { std::move(id), created_at, created_at + lifetime, std::nullopt };
}

std::vector<std::string> live_session_ids(Store& store, int64_t now)
{
    auto sessions = store.list_sessions(now);
    REQUIRE_MESSAGE(sessions.ok(), sessions.error().text());
    std::vector<std::string> ids;
    for (auto const& session : sessions.value())
        ids.push_back(session.id);
    return ids;
}

}

TEST_CASE("a sign-in code is redeemed once: the second use, and a race's loser, add no session")
{
    TempDir tmp;
    Store store = open_store(tmp);
    TokenHash code = hash_secret("code-1");
    REQUIRE(store.add_login_code(code, t0, t0 + 10 * minute_ms).ok());

    auto first = store.redeem_login_code(code, hash_secret("secret-1"), session_record("s1", t0 + minute_ms), t0 + minute_ms);
    REQUIRE_MESSAGE(first.ok(), first.error().text());
    CHECK(first.value());
    auto second = store.redeem_login_code(code, hash_secret("secret-2"), session_record("s2", t0 + minute_ms), t0 + minute_ms);
    REQUIRE(second.ok());
    CHECK(!second.value());
    CHECK(live_session_ids(store, t0 + minute_ms) == std::vector<std::string> { "s1" });
    CHECK(query_int(store.db(), "SELECT count(*) FROM login_codes") == 0);

    // A second connection to the same file (a second worker request is on
    // the same one; `posta-server login` is another): still once.
    TokenHash other = hash_secret("code-2");
    REQUIRE(store.add_login_code(other, t0, t0 + 10 * minute_ms).ok());
    auto again = Store::open(tmp.path());
    REQUIRE(again.ok());
    CHECK(again->redeem_login_code(other, hash_secret("secret-3"), session_record("s3", t0), t0).value());
    CHECK(!store.redeem_login_code(other, hash_secret("secret-4"), session_record("s4", t0), t0).value());
}

TEST_CASE("a sign-in code works until its expiry and not from then on, and an expired one is removed")
{
    TempDir tmp;
    Store store = open_store(tmp);
    REQUIRE(store.add_login_code(hash_secret("early"), t0, t0 + 10 * minute_ms).ok());
    REQUIRE(store.add_login_code(hash_secret("late"), t0, t0 + 10 * minute_ms).ok());
    CHECK(store.redeem_login_code(hash_secret("early"), hash_secret("a"), session_record("a", t0), t0 + 10 * minute_ms - 1)
              .value());
    CHECK(!store.redeem_login_code(hash_secret("late"), hash_secret("b"), session_record("b", t0), t0 + 10 * minute_ms)
               .value());
    CHECK(live_session_ids(store, t0 + 10 * minute_ms) == std::vector<std::string> { "a" });
    CHECK(query_int(store.db(), "SELECT count(*) FROM login_codes") == 0);

    // Codes nobody redeemed go when the next one is added after their expiry.
    REQUIRE(store.add_login_code(hash_secret("forgotten"), t0, t0 + 10 * minute_ms).ok());
    REQUIRE(store.add_login_code(hash_secret("next"), t0 + 10 * minute_ms, t0 + 20 * minute_ms).ok());
    CHECK(query_int(store.db(), "SELECT count(*) FROM login_codes") == 1);
}

TEST_CASE("an unknown code, another store's code or a token is not a sign-in code")
{
    TempDir tmp;
    TempDir other_dir;
    Store store = open_store(tmp);
    Store other = open_store(other_dir);
    REQUIRE(other.add_login_code(hash_secret("theirs"), t0, t0 + 10 * minute_ms).ok());
    REQUIRE(store.add_token(hash_secret("a-token"), t0).ok());
    CHECK(!store.redeem_login_code(hash_secret("theirs"), hash_secret("x"), session_record("x", t0), t0).value());
    CHECK(!store.redeem_login_code(hash_secret("a-token"), hash_secret("y"), session_record("y", t0), t0).value());
    CHECK(!store.redeem_login_code(hash_secret(""), hash_secret("z"), session_record("z", t0), t0).value());
    CHECK(live_session_ids(store, t0).empty());
}

TEST_CASE("a session is found by its secret's hash until it expires; only hashes are stored")
{
    TempDir tmp;
    Store store = open_store(tmp);
    REQUIRE(store.add_session(hash_secret("the-secret"), session_record("s1", t0, 30 * day_ms), t0).ok());
    auto found = store.find_session(hash_secret("the-secret"), t0 + 30 * day_ms - 1);
    REQUIRE_MESSAGE(found.ok(), found.error().text());
    REQUIRE(found.value());
    CHECK(found.value()->id == "s1");
    CHECK(found.value()->created_at_ms == t0);
    CHECK(found.value()->expires_at_ms == t0 + 30 * day_ms);
    CHECK(!store.find_session(hash_secret("the-secret"), t0 + 30 * day_ms).value());
    CHECK(!store.find_session(hash_secret("the-secret-"), t0).value());
    CHECK(live_session_ids(store, t0 + 30 * day_ms).empty());
    CHECK(query_int(store.db(), "SELECT count(*) FROM sessions WHERE typeof(hash) = 'blob' AND length(hash) = 32") == 1);

    // Expired sessions go when the next one is added.
    REQUIRE(store.add_session(hash_secret("next"), session_record("s2", t0 + 30 * day_ms), t0 + 30 * day_ms).ok());
    CHECK(query_int(store.db(), "SELECT count(*) FROM sessions") == 1);
}

TEST_CASE("a session's use is noted at most once an hour")
{
    TempDir tmp;
    Store store = open_store(tmp);
    REQUIRE(store.add_session(hash_secret("s"), session_record("s1", t0), t0).ok());
    CHECK(store.find_session(hash_secret("s"), t0).value()->last_seen_at_ms == t0);
    CHECK(store.find_session(hash_secret("s"), t0 + 59 * minute_ms).value()->last_seen_at_ms == t0);
    CHECK(query_int(store.db(), "SELECT last_seen_at FROM sessions") == t0);
    CHECK(store.find_session(hash_secret("s"), t0 + 60 * minute_ms).value()->last_seen_at_ms == t0 + 60 * minute_ms);
    CHECK(query_int(store.db(), "SELECT last_seen_at FROM sessions") == t0 + 60 * minute_ms);
}

TEST_CASE("sessions are listed oldest first, and a revoked one is gone for good")
{
    TempDir tmp;
    Store store = open_store(tmp);
    REQUIRE(store.add_session(hash_secret("one"), session_record("s1", t0), t0).ok());
    REQUIRE(store.add_session(hash_secret("two"), session_record("s2", t0 + minute_ms), t0 + minute_ms).ok());
    REQUIRE(store.add_session(hash_secret("short"), session_record("s3", t0, minute_ms), t0 + minute_ms).ok());
    CHECK(live_session_ids(store, t0 + minute_ms - 1) == std::vector<std::string> { "s1", "s3", "s2" });
    CHECK(live_session_ids(store, t0 + minute_ms) == std::vector<std::string> { "s1", "s2" });

    CHECK(store.delete_session("s1", t0 + minute_ms).value());
    CHECK(!store.delete_session("s1", t0 + minute_ms).value());
    CHECK(!store.delete_session("nope", t0 + minute_ms).value());
    CHECK(!store.delete_session("s3", t0 + minute_ms).value()); // expired: nothing to end
    CHECK(!store.find_session(hash_secret("one"), t0 + minute_ms).value());
    CHECK(store.find_session(hash_secret("two"), t0 + minute_ms).value());
    CHECK(live_session_ids(store, t0 + minute_ms) == std::vector<std::string> { "s2" });
}

// -- Events ----------------------------------------------------------------

TEST_CASE("events are read back after a seq, and pruning keeps the last 10000 or the last 7 days")
{
    TempDir tmp;
    Store store = open_store(tmp);
    int64_t const day = 24 * 3600 * 1000;
    REQUIRE(store.db().exec("BEGIN").ok());
    for (int i = 0; i < 10005; ++i)
        REQUIRE(store.append_event("t", "{}", t0 - 10 * day).ok());
    REQUIRE(store.db().exec("COMMIT").ok());
    REQUIRE(store.append_event("t", "{\"new\":1}", t0).ok());

    auto after = store.events_after(10004, 10);
    REQUIRE(after.ok());
    REQUIRE(after->size() == 2);
    CHECK(after->at(0).seq == 10005);
    CHECK(after->at(1).data == "{\"new\":1}");

    auto pruned = store.prune_events(t0);
    REQUIRE(pruned.ok());
    CHECK(pruned.value() == 6);
    auto range = store.event_range();
    REQUIRE(range.ok());
    CHECK(range->oldest == 7);
    CHECK(range->last == 10006);

    // Young events stay however many there are.
    REQUIRE(store.db().exec("UPDATE events SET created_at = 0 WHERE seq < 100").ok());
    CHECK(store.prune_events(t0 + 6 * day).value() == 0);
    REQUIRE(store.db().exec("DELETE FROM events").ok());
    range = store.event_range();
    CHECK(range->oldest == 0);
    CHECK(range->last == 10006);
}
