//! A partition's push leases, kept in the object's memory instead of its database.
//!
//! # Why in memory
//! A push lease exists only while this process's dispatcher runs the batch. Writing it down
//! would cost a commit and an fsync wait per batch, and after a crash the lease would have to be
//! released anyway (no dispatcher survives a restart). So leasing a push batch is a read; only
//! its outcome (ack, retry) is written. If the instance is dropped, its leases are forgotten and
//! the messages are simply visible again: at-least-once holds, at worst with a duplicate. While
//! leases are outstanding the object keeps itself alive (`wait_until`), so hibernation does not
//! drop them.
//!
//! # The cursor
//! Leased rows stay visible in the database, so leasing must skip them without a scan. Leases take
//! visible rows in `(visible_at, seq)` order, so every leased row sits at or before the key of the
//! last row leased: the cursor. Rows after the cursor are never leased, and every write that makes
//! a row visible gives it a key after the cursor: its `visible_at` is now or later (and the
//! cursor's is not after now), and its `seq` is new, because inserts and retries take the next
//! value of a counter that only grows while the instance (and so the cursor) lives. So "visible
//! and after the cursor" is exactly "visible and not leased", and it is an index range. With no
//! lease outstanding the cursor resets.

use std::collections::HashMap;

/// One leased message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) token: u64,
    /// Its `attempts` column when leased (deliveries that ended in a retry).
    pub(crate) attempts: u32,
}

#[derive(Debug, Default)]
pub(crate) struct PushLeases {
    leased: HashMap<i64, Lease>,
    /// `(visible_at, seq)` of the last row leased.
    cursor: Option<(i64, i64)>,
    /// When each batch's lease runs out: a safety net for a batch nobody settles.
    expiries: HashMap<u64, i64>,
}

impl PushLeases {
    /// The key leasing starts after; forgets every lease if one has run out.
    pub(crate) fn start(&mut self, now: i64) -> (i64, i64) {
        if self.expiries.values().any(|expiry| *expiry <= now) {
            tracing::warn!(
                leased = self.leased.len(),
                "a push lease ran out unsettled; its messages are visible again"
            );
            self.clear();
        }
        if self.leased.is_empty() {
            self.cursor = None;
        }
        self.cursor.unwrap_or((i64::MIN, i64::MIN))
    }

    /// Records a batch: `rows` as `(seq, visible_at, attempts)` in key order.
    pub(crate) fn record(&mut self, token: u64, expires_at: i64, rows: &[(i64, i64, u32)]) {
        for &(seq, visible_at, attempts) in rows {
            self.leased.insert(seq, Lease { token, attempts });
            self.cursor = Some(
                self.cursor
                    .map_or((visible_at, seq), |cursor| cursor.max((visible_at, seq))),
            );
        }
        if !rows.is_empty() {
            self.expiries.insert(token, expires_at);
        }
    }

    /// Settles one message: its lease, if `token` still holds it.
    pub(crate) fn take(&mut self, seq: i64, token: u64) -> Option<Lease> {
        match self.leased.get(&seq) {
            Some(lease) if lease.token == token => {
                let lease = self.leased.remove(&seq);
                if !self.leased.values().any(|l| l.token == token) {
                    self.expiries.remove(&token);
                }
                lease
            }
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.leased.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.leased.is_empty()
    }

    /// Forgets every lease (a new dispatcher took over, or a lease ran out).
    pub(crate) fn clear(&mut self) {
        self.leased.clear();
        self.expiries.clear();
        self.cursor = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_follows_leases_and_resets_when_none_are_left() {
        let mut leases = PushLeases::default();
        assert_eq!(leases.start(100), (i64::MIN, i64::MIN));
        leases.record(7, 1_000, &[(1, 50, 0), (2, 60, 0)]);
        assert_eq!(leases.start(100), (60, 2));
        assert_eq!(leases.take(1, 8), None, "another token");
        assert!(leases.take(1, 7).is_some());
        assert_eq!(leases.take(1, 7), None, "settled once");
        assert_eq!(leases.start(100), (60, 2), "still one lease out");
        assert!(leases.take(2, 7).is_some());
        assert_eq!(leases.start(100), (i64::MIN, i64::MIN));
        assert!(leases.is_empty());
    }

    #[test]
    fn an_expired_lease_releases_everything() {
        let mut leases = PushLeases::default();
        leases.record(1, 500, &[(1, 10, 0)]);
        leases.record(2, 900, &[(2, 20, 0)]);
        assert_eq!(leases.start(499), (20, 2));
        assert_eq!(leases.start(500), (i64::MIN, i64::MIN));
        assert_eq!(leases.len(), 0);
    }
}
