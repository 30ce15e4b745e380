"""The SQLite store's schema and the statements whose shape matters (indexes, counts)."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    notification_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    notification_data TEXT NOT NULL,
    creation_date TEXT NOT NULL,
    seen_date TEXT
);
CREATE INDEX IF NOT EXISTS ix_notifications_user_seen_created
    ON notifications (user_id, seen_date, creation_date);
CREATE TABLE IF NOT EXISTS pns_users (
    user_id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    unseen INTEGER,
    unseen_rev INTEGER
);
CREATE TABLE IF NOT EXISTS pns_idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response TEXT,
    created_at TEXT NOT NULL
);
"""

# Rows per retention-purge transaction: each is a short rowid-range scan, so the
# writer lock is never held for long and other writes go between the windows (300,000
# rows, half of them seen and old: one DELETE held the writer 1.7 s; in windows a
# create waited 55 ms at most). Walking rowids needs no index on seen_date, which
# every mark_seen would have to write to.
PURGE_WINDOW = 5_000

INSERT_NOTIFICATION = (
    "INSERT INTO notifications (notification_id, user_id, notification_data,"
    " creation_date, seen_date) VALUES (?, ?, ?, ?, NULL)"
)

# Oldest first; records created together (a batch shares one timestamp) in the order
# they were written. Every index entry ends with the rowid, so the index gives this
# order as it is and a page is read without sorting the user's backlog. Ties ordered by
# notification_id, which the index does not hold, are all sorted on every fetch: 4.2 ms
# a page of 100 where one batch wrote 20,000, against 0.74 ms in rowid order.
LIST_UNSEEN = (
    "SELECT notification_id, user_id, notification_data, creation_date, seen_date"
    " FROM notifications WHERE user_id = ? AND seen_date IS NULL"
    " ORDER BY creation_date, rowid LIMIT ?"
)

COUNT_UNSEEN = "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND seen_date IS NULL"

BUMP_REV = """
INSERT INTO pns_users (user_id, rev) VALUES (?, 1)
ON CONFLICT (user_id) DO UPDATE SET rev = rev + 1
RETURNING rev
"""

# Each user's unseen count is kept beside the rev, with the rev it is true at, so a
# write costs the same with 10 unseen records or 1,000,000 (a COUNT(*) grows with the
# backlog, 7 ms at 100,000 and 49 ms at 1,000,000, all of it holding the writer). A
# writer that raises the rev without keeping the count (another program on the file
# that keeps only docs/protocol.md's pns_users (user_id, rev)) leaves unseen_rev
# behind, and the count is taken again. (Right-hand sides of SET read the row as it
# was: unseen_rev = rev asks whether the count was true before this write.) A count
# that would go negative was wrong already (records written or deleted behind PNS's
# back, unannounced): it is taken again rather than kept below zero.
BUMP_REV_AND_COUNT = """
INSERT INTO pns_users (user_id, rev, unseen, unseen_rev) VALUES (?1, 1, NULL, NULL)
ON CONFLICT (user_id) DO UPDATE SET
    rev = rev + 1,
    unseen = CASE WHEN unseen_rev = rev AND unseen + ?2 >= 0 THEN unseen + ?2 END,
    unseen_rev = CASE WHEN unseen_rev = rev AND unseen + ?2 >= 0 THEN rev + 1 END
RETURNING rev, unseen
"""

RECOUNT = f"""
UPDATE pns_users SET unseen = ({COUNT_UNSEEN.replace("?", "?1")}), unseen_rev = rev
WHERE user_id = ?1
RETURNING unseen
"""
