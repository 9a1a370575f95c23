//! Hash maps keyed by the ids the server itself assigns (ocids, chat ids).
//!
//! Such keys are sequential integers, not chosen by clients, so SipHash's defence against
//! chosen keys buys nothing there, and it cost about 2 % of the instructions of a direct message
//! (hashing on the connection, hub and writer paths). [`IdHasher`] multiplies and folds:
//! a few instructions per key. Maps keyed by client-chosen strings keep the standard hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by server-assigned ids.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// An odd constant with well-spread bits (the golden ratio in 64 bits).
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Multiply-rotate hashing of integer keys; see the module documentation for where it is used.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(SPREAD);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The table takes its bucket from the low bits and its tag from the top seven; a
        // product's low bits see only the key's low bits, so the high half is folded down,
        // mixed once more and folded again.
        let h = (self.0 ^ (self.0 >> 33)).wrapping_mul(SPREAD);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Distinct buckets of a 1024-slot table, and distinct tags, for 1024 keys `first + k * step`.
    fn spread(first: u64, step: u64) -> (usize, usize) {
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut buckets = std::collections::HashSet::new();
        let mut tags = std::collections::HashSet::new();
        for k in 0..1024u64 {
            let h = build.hash_one(first + k * step);
            buckets.insert(h & 1023);
            tags.insert(h >> 57);
        }
        (buckets.len(), tags.len())
    }

    #[test]
    fn ids_spread_over_buckets_and_tags_as_random_keys_would() {
        // 1024 random hashes fill ~647 of 1024 buckets on average; the table's tags take the
        // top seven bits. Sequential ids (ocids) and ids that differ only in high bits must
        // spread at least about as well.
        for (first, step) in [(10_001, 1), (1, 1 << 20), (7, 1 << 40), (0, 3)] {
            let (buckets, tags) = spread(first, step);
            assert!(buckets > 600, "step {step}: {buckets} buckets");
            assert!(tags > 110, "step {step}: {tags} tags");
        }
    }

    #[test]
    fn pairs_of_ids_are_told_apart() {
        let build = BuildHasherDefault::<IdHasher>::default();
        assert_ne!(build.hash_one((1u64, 2u64)), build.hash_one((2u64, 1u64)));
        let mut map: IdMap<(u64, u64), u64> = IdMap::default();
        for a in 0..100u64 {
            for b in 0..100u64 {
                map.insert((a, b), a * 100 + b);
            }
        }
        assert_eq!(map.len(), 10_000);
        assert_eq!(map.get(&(42, 7)), Some(&4207));
    }
}
