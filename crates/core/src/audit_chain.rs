//! The audit trail's hash chain (docs/operations.md, "Audit trail").
//!
//! The rows of each account form one chain: every row carries its position `seq` (1, 2, 3, … in
//! the account), the id of the row before it (`prev_id`) and
//! `hash = HMAC-SHA256(chain key, prev hash ‖ canonical row bytes)`, where the chain key is
//! derived from the master key (so that write access to the database alone is not enough to
//! recompute a chain after editing it) and the first row's "prev hash" is the chain's anchor (32
//! zero bytes, or the hash of the last row pruned). The chain's head (last id, seq and hash) and
//! anchor live in the `audit_chain` table; the store appends rows to a chain while holding its
//! head (one writer thread on SQLite, `SELECT … FOR UPDATE` on PostgreSQL), so several nodes can
//! append to one chain.
//!
//! Requests that fail account authentication have no account: they are counted in aggregate rows
//! (one per source address and minute, see [`crate::store::AuditRow::count`]) that stand outside
//! every chain.
//!
//! [`Verifier`] walks a chain in id order and names the first row that was altered, removed or
//! inserted.

use crate::store::AuditRow;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The "previous hash" of a chain's first row.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// The key under which audit rows are chained (derived from the master key).
#[derive(Clone)]
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

impl ChainKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ChainKey(Zeroizing::new(bytes))
    }

    /// The hash of `row` (its `seq` and `prev_id` set) following a row whose hash is `prev`.
    pub fn link(&self, prev: &[u8], row: &AuditRow) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("HMAC accepts any key length");
        mac.update(prev);
        mac.update(&canonical(row));
        mac.finalize().into_bytes().to_vec()
    }
}

/// The bytes of a row that its hash covers: every column but its own id and hash, integers as
/// 8-byte big-endian, texts as a 4-byte big-endian length and their UTF-8 bytes.
pub fn canonical(row: &AuditRow) -> Vec<u8> {
    let texts = [&row.account_name, &row.op, &row.username, &row.psn, &row.source];
    let mut out = Vec::with_capacity(96 + texts.iter().map(|t| t.len()).sum::<usize>());
    out.extend_from_slice(b"tessera-audit-v1");
    for n in [row.seq.unwrap_or(-1), row.prev_id.unwrap_or(-1), row.at_ms, row.account_id.unwrap_or(-1)] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    for t in texts {
        out.extend_from_slice(&(t.len() as u32).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    for n in [row.code, row.duration_us, row.count] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out
}

/// A chain's head and anchor, as stored in `audit_chain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The account.
    pub account_id: i64,
    /// The last row appended (0: none yet).
    pub head_id: i64,
    pub head_seq: i64,
    pub head_hash: Vec<u8>,
    /// The last row pruned (0: none pruned): the first remaining row follows it.
    pub anchor_id: i64,
    pub anchor_seq: i64,
    pub anchor_hash: Vec<u8>,
}

impl ChainHead {
    /// The head of a chain with no row yet.
    pub fn empty(account_id: i64) -> Self {
        ChainHead {
            account_id,
            head_id: 0,
            head_seq: 0,
            head_hash: GENESIS.to_vec(),
            anchor_id: 0,
            anchor_seq: 0,
            anchor_hash: GENESIS.to_vec(),
        }
    }
}

/// The first fault found in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The row's content (or its hash) is not what was chained.
    Altered { id: i64 },
    /// The row was not appended by the chain: the rows around it chain without it.
    Inserted { id: i64 },
    /// Row `id` (and `missing - 1` rows before it) is gone; `next_id` is the row after the gap (0:
    /// it was the chain's last row).
    Removed { id: i64, missing: i64, next_id: i64 },
}

impl Break {
    /// The id of the first row that was altered, removed or inserted.
    pub fn id(&self) -> i64 {
        match self {
            Break::Altered { id } | Break::Inserted { id } | Break::Removed { id, .. } => *id,
        }
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Altered { id } => write!(f, "row {id} was altered"),
            Break::Inserted { id } => write!(f, "row {id} was inserted"),
            Break::Removed { id, missing, next_id: 0 } if *missing <= 1 => write!(f, "row {id} (the chain's last) was removed"),
            Break::Removed { id, missing, next_id: 0 } => {
                write!(f, "row {id} (the chain's last) and {} row(s) before it were removed", missing - 1)
            }
            Break::Removed { id, missing, next_id } if *missing <= 1 => write!(f, "row {id} was removed (before row {next_id})"),
            Break::Removed { id, missing, next_id } => {
                write!(f, "row {id} and {} row(s) before it were removed (before row {next_id})", missing - 1)
            }
        }
    }
}

/// Walks one chain's rows in id order (fed in pages) and stops at the first fault.
pub struct Verifier<'k> {
    key: &'k ChainKey,
    head: ChainHead,
    last_id: i64,
    last_seq: i64,
    last_hash: Vec<u8>,
    /// A row that did not chain, held until the next row tells whether it was inserted or altered.
    suspect: Option<AuditRow>,
    found: Option<Break>,
    /// Rows checked.
    pub rows: u64,
}

impl<'k> Verifier<'k> {
    pub fn new(key: &'k ChainKey, head: ChainHead) -> Self {
        let (last_id, last_seq, last_hash) = (head.anchor_id, head.anchor_seq, head.anchor_hash.clone());
        Verifier { key, head, last_id, last_seq, last_hash, suspect: None, found: None, rows: 0 }
    }

    /// Whether a fault was found (further rows are ignored).
    pub fn broken(&self) -> bool {
        self.found.is_some()
    }

    fn follows(&self, r: &AuditRow) -> bool {
        r.prev_id == Some(self.last_id)
            && r.seq == Some(self.last_seq + 1)
            && r.hash.as_deref().is_some_and(|h| crate::crypto::ct_eq(h, &self.key.link(&self.last_hash, r)))
    }

    /// Checks the next row of the chain (rows must come in id order).
    pub fn push(&mut self, r: &AuditRow) {
        if self.found.is_some() {
            return;
        }
        self.rows += 1;
        if let Some(s) = self.suspect.take() {
            // The row after a suspect chaining from the suspect's predecessor: the suspect was
            // inserted. Otherwise it was altered.
            self.found = Some(if self.follows(r) { Break::Inserted { id: s.id } } else { Break::Altered { id: s.id } });
            return;
        }
        if r.id <= self.head.anchor_id {
            // Pruned rows do not come back.
            self.found = Some(Break::Inserted { id: r.id });
            return;
        }
        if self.follows(r) {
            self.last_id = r.id;
            self.last_seq = r.seq.unwrap_or(0);
            self.last_hash = r.hash.clone().unwrap_or_default();
            return;
        }
        match (r.prev_id, r.seq) {
            // The row names a predecessor that is not the last row seen, further on in the
            // sequence: the rows in between are gone.
            (Some(prev), Some(seq)) if prev > self.last_id && seq > self.last_seq + 1 => {
                self.found = Some(Break::Removed { id: prev, missing: seq - self.last_seq - 1, next_id: r.id });
            }
            _ => self.suspect = Some(r.clone()),
        }
    }

    /// The verdict once every row was pushed: the first fault, if any.
    pub fn finish(mut self) -> Option<Break> {
        if let Some(b) = self.found.take() {
            return Some(b);
        }
        if let Some(s) = self.suspect.take() {
            // The last row did not chain: if the head is still the row before it, it was
            // inserted; otherwise altered.
            return Some(if self.head.head_id == self.last_id { Break::Inserted { id: s.id } } else { Break::Altered { id: s.id } });
        }
        if self.head.head_id != self.last_id || self.head.head_seq != self.last_seq {
            if self.head.head_seq > self.last_seq {
                return Some(Break::Removed { id: self.head.head_id, missing: self.head.head_seq - self.last_seq, next_id: 0 });
            }
            // The head names an earlier row than the last one found: the head was rolled back.
            return Some(Break::Inserted { id: self.last_id });
        }
        if !crate::crypto::ct_eq(&self.head.head_hash, &self.last_hash) {
            return Some(Break::Altered { id: self.last_id });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(key: &ChainKey, n: i64) -> (Vec<AuditRow>, ChainHead) {
        let mut head = ChainHead::empty(7);
        let mut rows = Vec::new();
        for i in 0..n {
            let mut r = AuditRow {
                id: 10 + 3 * i,
                at_ms: 1000 + i,
                account_id: Some(7),
                account_name: "acct".into(),
                op: "validate_user".into(),
                username: format!("u{i}"),
                code: 0,
                ..Default::default()
            };
            r.seq = Some(head.head_seq + 1);
            r.prev_id = Some(head.head_id);
            let h = key.link(&head.head_hash, &r);
            r.hash = Some(h.clone());
            head.head_id = r.id;
            head.head_seq += 1;
            head.head_hash = h;
            rows.push(r);
        }
        (rows, head)
    }

    fn verify(key: &ChainKey, head: &ChainHead, rows: &[AuditRow]) -> Option<Break> {
        let mut v = Verifier::new(key, head.clone());
        for r in rows {
            v.push(r);
        }
        v.finish()
    }

    #[test]
    fn intact_altered_removed_inserted() {
        let key = ChainKey::from_bytes([9; 32]);
        let (rows, head) = chain(&key, 6);
        assert_eq!(verify(&key, &head, &rows), None);
        assert_eq!(verify(&key, &ChainHead::empty(7), &[]), None);

        let mut altered = rows.clone();
        altered[2].code = 9000;
        assert_eq!(verify(&key, &head, &altered), Some(Break::Altered { id: rows[2].id }));
        let mut last_altered = rows.clone();
        last_altered[5].username = "x".into();
        assert_eq!(verify(&key, &head, &last_altered), Some(Break::Altered { id: rows[5].id }));

        let mut removed = rows.clone();
        removed.remove(3);
        assert_eq!(verify(&key, &head, &removed), Some(Break::Removed { id: rows[3].id, missing: 1, next_id: rows[4].id }));
        let mut first_removed = rows.clone();
        first_removed.remove(0);
        assert_eq!(verify(&key, &head, &first_removed).map(|b| b.id()), Some(rows[0].id));
        let mut tail_removed = rows.clone();
        tail_removed.pop();
        assert_eq!(verify(&key, &head, &tail_removed), Some(Break::Removed { id: rows[5].id, missing: 1, next_id: 0 }));

        let mut inserted = rows.clone();
        let mut fake = rows[2].clone();
        fake.id = rows[2].id + 1;
        fake.seq = rows[3].seq;
        fake.username = "mallory".into();
        inserted.insert(3, fake.clone());
        assert_eq!(verify(&key, &head, &inserted), Some(Break::Inserted { id: fake.id }));
        let mut appended = rows.clone();
        fake.id = 1000;
        appended.push(fake.clone());
        assert_eq!(verify(&key, &head, &appended), Some(Break::Inserted { id: 1000 }));

        // A chain recomputed with another key does not verify.
        let other = ChainKey::from_bytes([8; 32]);
        let (forged, forged_head) = chain(&other, 6);
        assert_eq!(verify(&key, &forged_head, &forged), Some(Break::Altered { id: forged[0].id }));
    }

    #[test]
    fn pruned_prefix_is_an_anchor() {
        let key = ChainKey::from_bytes([1; 32]);
        let (rows, mut head) = chain(&key, 5);
        head.anchor_id = rows[1].id;
        head.anchor_seq = 2;
        head.anchor_hash = rows[1].hash.clone().unwrap_or_default();
        assert_eq!(verify(&key, &head, &rows[2..]), None);
        assert_eq!(verify(&key, &head, &rows[3..]).map(|b| b.id()), Some(rows[2].id));
        assert_eq!(verify(&key, &head, &rows[1..]), Some(Break::Inserted { id: rows[1].id }));
    }
}
