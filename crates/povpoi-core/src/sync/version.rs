//! Dots and version vectors: who has seen which edits.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::device::ReplicaId;

/// One edit's identity: the replica that made it and that replica's edit counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that made the edit.
    pub replica: ReplicaId,
    /// Its sequence number on that replica, from 1, one per edit of any item.
    pub seq: u64,
}

/// For each replica, the highest edit counter seen (or superseded) from it.
///
/// Edits are only ever dropped once something newer covers them, so "counter ≤ n seen"
/// holds even though a replica may never have held every intermediate edit.
///
/// Stored as pairs sorted by replica: a vector holds a handful of entries (one per poi that
/// ever edited), where a tree map would cost a 200-byte node per record. On the wire it is
/// a postcard sequence of (replica, counter) pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(ReplicaId, u64)>")]
pub struct VersionVector(Vec<(ReplicaId, u64)>);

/// Most replicas one version vector may name. A group sees one replica per poi store ever
/// made (a wiped poi is a new one): thousands is far beyond any troupe, and the bound keeps
/// what a stranger's message can make a poi hold small (a vector this full is 64 KiB).
pub const MAX_VERSION_VECTOR_ENTRIES: usize = 4_096;

impl TryFrom<Vec<(ReplicaId, u64)>> for VersionVector {
    type Error = &'static str;

    fn try_from(pairs: Vec<(ReplicaId, u64)>) -> Result<Self, Self::Error> {
        if pairs.len() > MAX_VERSION_VECTOR_ENTRIES {
            return Err("version vector names more replicas than a poi takes");
        }
        if pairs.windows(2).any(|w| w[0].0 >= w[1].0) || pairs.iter().any(|p| p.1 == 0) {
            return Err("version vector entries must be sorted by replica, unique and non-zero");
        }
        Ok(VersionVector(pairs))
    }
}

impl VersionVector {
    /// The highest counter seen from `replica` (0 for none).
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.0.binary_search_by_key(&replica, |p| p.0).map_or(0, |i| self.0[i].1)
    }

    /// Whether the edit `dot` is covered by this vector.
    pub fn covers(&self, dot: Dot) -> bool {
        self.get(dot.replica) >= dot.seq
    }

    /// Records that `dot` has been seen.
    pub fn observe(&mut self, dot: Dot) {
        if dot.seq == 0 {
            return;
        }
        match self.0.binary_search_by_key(&dot.replica, |p| p.0) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(dot.seq),
            Err(i) => self.0.insert(i, (dot.replica, dot.seq)),
        }
    }

    /// Adds everything `other` has seen.
    pub fn join(&mut self, other: &VersionVector) {
        for &(replica, seq) in &other.0 {
            self.observe(Dot { replica, seq });
        }
    }

    /// Keeps only what both this vector and `other` have seen.
    pub fn meet(&mut self, other: &VersionVector) {
        self.0.retain_mut(|(replica, seq)| {
            *seq = (*seq).min(other.get(*replica));
            *seq > 0
        });
    }

    /// Whether this vector has seen everything `other` has.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|&(replica, seq)| self.get(replica) >= seq)
    }

    /// The (replica, counter) pairs, ordered by replica.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.0.iter().copied()
    }

    /// Number of replicas with an entry.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(ReplicaId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::default();
        for (replica, seq) in iter {
            vv.observe(Dot { replica, seq });
        }
        vv
    }
}

/// The three kinds of content that can be synced on their own, as `/api/sync/execute`
/// selects them (`syncImages`, `syncPatterns`, `syncSettings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    /// Images (metadata; pixels travel as blobs).
    Images,
    /// Patterns and sequences.
    Patterns,
    /// Brightness, frame rate and what plays.
    Settings,
}

impl Category {
    /// All categories.
    pub const ALL: [Category; 3] = [Category::Images, Category::Patterns, Category::Settings];
}

/// A replica's version vector per category: categories sync independently, so what a
/// replica has seen of one says nothing about another.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knowledge {
    /// Seen image edits.
    pub images: VersionVector,
    /// Seen pattern and sequence edits.
    pub patterns: VersionVector,
    /// Seen settings edits.
    pub settings: VersionVector,
}

impl Knowledge {
    /// The vector of one category.
    pub fn get(&self, category: Category) -> &VersionVector {
        match category {
            Category::Images => &self.images,
            Category::Patterns => &self.patterns,
            Category::Settings => &self.settings,
        }
    }

    /// The vector of one category, to update.
    pub fn get_mut(&mut self, category: Category) -> &mut VersionVector {
        match category {
            Category::Images => &mut self.images,
            Category::Patterns => &mut self.patterns,
            Category::Settings => &mut self.settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(pairs: &[(u64, u64)]) -> VersionVector {
        pairs.iter().map(|&(r, s)| (ReplicaId(r), s)).collect()
    }

    #[test]
    fn join_meet_and_dominance() {
        let a = vv(&[(1, 5), (2, 1)]);
        let b = vv(&[(1, 3), (3, 4)]);
        let mut j = a.clone();
        j.join(&b);
        assert_eq!(j, vv(&[(1, 5), (2, 1), (3, 4)]));
        assert!(j.dominates(&a) && j.dominates(&b));
        assert!(!a.dominates(&b) && !b.dominates(&a));
        let mut m = a.clone();
        m.meet(&b);
        assert_eq!(m, vv(&[(1, 3)]));
        assert!(a.covers(Dot { replica: ReplicaId(1), seq: 5 }));
        assert!(!a.covers(Dot { replica: ReplicaId(1), seq: 6 }));
        assert!(!a.covers(Dot { replica: ReplicaId(9), seq: 1 }));
    }

    #[test]
    fn decoding_refuses_unsorted_or_zero_entries() {
        let good = vv(&[(1, 5), (2, 1)]);
        let bytes = postcard::to_allocvec(&good).unwrap();
        assert_eq!(postcard::from_bytes::<VersionVector>(&bytes).unwrap(), good);
        let unsorted = postcard::to_allocvec(&[(ReplicaId(2), 1u64), (ReplicaId(1), 5)]).unwrap();
        assert!(postcard::from_bytes::<VersionVector>(&unsorted).is_err());
        let zero = postcard::to_allocvec(&[(ReplicaId(1), 0u64)]).unwrap();
        assert!(postcard::from_bytes::<VersionVector>(&zero).is_err());
    }
}
