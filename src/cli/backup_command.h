// `posta-server backup SLUG DIR` and `posta-server restore SLUG DIR`: one
// identity's keys.json and inbox.db, copied out of its state folder while the
// daemon may be serving it, and back into a state folder that does not have
// them.
//
// Backup is done here, not by the worker: SQLite's online backup API on a
// read-only connection, in one step under one read transaction, copies the
// database as one moment saw it while the worker goes on writing (WAL lets a
// reader and a writer work at once), so nothing is stopped or slowed. The
// worker could not do it itself: its sandbox lets it write only in its own
// folder, and handing it a file of the operator's would take fd passing
// over two sockets for what a reader can do alone. Run as root, the command
// reads the identity's files as their owner (the identity folder's, as
// effective user), so that whatever SQLite creates there (-shm, -wal) is the
// daemon user's, which its worker requires (SQLite, run as root, also gives
// such files to the database's owner; this does not depend on it). The copy
// is the operator's. Restore writes as the state folder's owner.
#pragma once

#include <string>

namespace posta {

// Each returns the exit code: 0 after one line on stdout saying what was
// copied where, 1 after one line on stderr. Neither overwrites anything.
int run_backup_command(std::string const& slug, std::string const& dir, std::string const& config_path);
// Refuses an identity the running daemon serves (asked over its control
// socket); what it writes belongs to the state folder's owner.
int run_restore_command(std::string const& slug, std::string const& dir, std::string const& config_path);

}
