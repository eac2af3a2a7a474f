//! Sharded maps keyed by ids, with a keyed hash for 16-byte ids.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{AccountId, LinkId, SessionId};

use super::SHARDS;

/// Keys are UUIDs, mostly random; the shard is picked from their low bits and the map inside
/// hashes with [`IdHasher`].
#[derive(Debug)]
pub(super) struct Shards<K, V>(pub(super) Box<[Mutex<HashMap<K, V, IdHashing>>]>);

/// A keyed hash for 16-byte ids: a folded 64x64->128 multiply per 8 bytes, with a random key
/// per store. Ids are mostly random UUIDs, so this needs only to spread them and to keep an
/// outsider who picks ids (without knowing the key) from aiming them at one bucket. SipHash,
/// the standard hasher, was 40% of a redemption's instructions.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdHashing {
    key: [u64; 2],
}

impl IdHashing {
    fn random() -> Self {
        use std::hash::BuildHasher;
        let seeds = std::collections::hash_map::RandomState::new();
        Self {
            key: [seeds.hash_one(0x5eed_u64), seeds.hash_one(0xfeed_u64)],
        }
    }
}

impl std::hash::BuildHasher for IdHashing {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: self.key[0],
            key: self.key[1],
        }
    }
}

#[derive(Debug)]
pub(super) struct IdHasher {
    state: u64,
    key: u64,
}

impl IdHasher {
    fn mix(&mut self, word: u64) {
        let product = u128::from(self.state ^ word) * u128::from(self.key | 1);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        if let Ok(id) = <[u8; 16]>::try_from(bytes) {
            let [lo, hi] = [&id[..8], &id[8..]]
                .map(|half| u64::from_le_bytes(half.try_into().unwrap_or_default()));
            self.mix(lo);
            self.mix(hi);
            return;
        }
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

pub(super) trait ShardKey {
    fn shard(&self) -> usize;
}

macro_rules! shard_key {
    ($($id:ty),*) => {$(
        impl ShardKey for $id {
            fn shard(&self) -> usize {
                (self.as_uuid().as_u64_pair().1 as usize) % SHARDS
            }
        }
    )*};
}
shard_key!(LinkId, AccountId, SessionId);

impl<K: ShardKey + Eq + Hash, V> Shards<K, V> {
    pub(super) fn new() -> Self {
        let hashing = IdHashing::random();
        Self(
            (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(hashing)))
                .collect(),
        )
    }

    pub(super) fn lock(&self, key: &K) -> MutexGuard<'_, HashMap<K, V, IdHashing>> {
        lock(&self.0[key.shard()])
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section validates before it mutates, so a panic cannot leave a shard half
    // updated; a poisoned lock is safe to keep using.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
