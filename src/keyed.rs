//! A bounded map of per-key state (a breaker or a bulkhead per host or tenant),
//! shared by the keyed circuit breaker and the keyed bulkhead.
//!
//! **The hit path** takes the map's read lock, clones the value's `Arc` and marks the
//! entry used: one store, and only if the mark was clear (a mark already set is only
//! read, so a hot key's line is not written by every call). It takes no exclusive
//! lock and reads no clock: a clock read is a lock of its own in a paused runtime.
//!
//! **The bound.** A miss takes the write lock and inserts, at most `max_keys` entries.
//! At the bound, entries idle for `idle` are evicted first; if none is, the least
//! recently used entry the caller ranks [`Evict::First`] goes, then one it ranks
//! [`Evict::Last`]; entries ranked [`Evict::Never`] stay, and the insert fails when
//! nothing may go. Recency is measured without a clock on the hit path: each scan
//! (on a miss at the bound, or at most every `idle / 4` on any miss) dates the
//! entries marked since the previous scan at the scan's time and clears their mark.
//! An entry's recorded last use is therefore never earlier than its real one, so
//! nothing used within `idle` is taken for idle; an idle entry may outlive `idle` by
//! the time between two scans. The scan is O(`max_keys`) and only runs on a miss.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::clock::{Epoch, nanos};

/// How willingly an entry is evicted when the map is full and none is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Evict {
    /// Preferred (a closed breaker, a bulkhead with nothing in flight).
    First,
    /// Only if no entry ranks `First`.
    #[cfg_attr(not(feature = "circuit-breaker"), allow(dead_code))]
    Last,
    /// Never evicted at the bound (idle eviction still applies).
    Never,
}

struct Entry<V> {
    value: V,
    /// Set by a hit, cleared by a scan.
    used: AtomicBool,
    /// Nanoseconds since the epoch: the last scan that found the entry used, or its
    /// insertion. Written under the write lock only.
    last_used: u64,
}

struct Map<K, V> {
    entries: HashMap<K, Entry<V>>,
    last_scan: u64,
}

pub(crate) struct KeyedMap<K, V> {
    map: RwLock<Map<K, V>>,
    epoch: Epoch,
    max_keys: usize,
    /// Nanoseconds; changeable after construction (a layer's setter).
    idle: AtomicU64,
}

impl<K, V> KeyedMap<K, V> {
    pub(crate) fn new(max_keys: usize, idle: Duration) -> Self {
        Self {
            map: RwLock::new(Map {
                entries: HashMap::new(),
                last_scan: 0,
            }),
            epoch: Epoch::new(),
            max_keys,
            idle: AtomicU64::new(nanos(idle)),
        }
    }

    #[cfg_attr(
        not(any(feature = "bulkhead", feature = "circuit-breaker")),
        allow(dead_code)
    )]
    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }

    #[cfg_attr(not(feature = "bulkhead"), allow(dead_code))]
    pub(crate) fn set_idle(&self, idle: Duration) {
        self.idle.store(nanos(idle), Ordering::Relaxed);
    }
}

impl<K: Hash + Eq, V: Clone> KeyedMap<K, V> {
    fn read(&self) -> RwLockReadGuard<'_, Map<K, V>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map<K, V>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `key`, marked used.
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let map = self.read();
        let e = map.entries.get(key)?;
        if !e.used.load(Ordering::Relaxed) {
            e.used.store(true, Ordering::Relaxed);
        }
        Some(e.value.clone())
    }

    /// The value of `key`, without marking it used (for handles).
    #[cfg_attr(
        not(any(feature = "bulkhead", feature = "circuit-breaker")),
        allow(dead_code)
    )]
    pub(crate) fn peek(&self, key: &K) -> Option<V> {
        self.read().entries.get(key).map(|e| e.value.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// The value of `key`, made by `make` and inserted if it has none; `None` when the
    /// map is full and `rank` allows no eviction.
    pub(crate) fn get_or_insert(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        rank: impl Fn(&V) -> Evict,
    ) -> Option<V> {
        if let Some(v) = self.get(&key) {
            return Some(v);
        }
        self.insert_slow(key, make, rank)
    }

    #[cold]
    #[inline(never)]
    fn insert_slow(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        rank: impl Fn(&V) -> Evict,
    ) -> Option<V> {
        let now = self.epoch.now();
        let idle = self.idle.load(Ordering::Relaxed);
        let mut map = self.write();
        if let Some(e) = map.entries.get_mut(&key) {
            *e.used.get_mut() = true;
            return Some(e.value.clone());
        }
        let full = map.entries.len() >= self.max_keys;
        if full || now.saturating_sub(map.last_scan) >= idle / 4 {
            scan(&mut map, now);
        }
        if full {
            map.entries
                .retain(|_, e| now.saturating_sub(e.last_used) < idle);
        }
        if map.entries.len() >= self.max_keys {
            let victim = map
                .entries
                .iter()
                .map(|(k, e)| (rank(&e.value), e.last_used, k))
                .filter(|(r, _, _)| *r != Evict::Never)
                .min_by_key(|(r, at, _)| (*r, *at))
                .map(|(_, _, k)| k as *const K);
            let victim = victim?;
            // The key is found again by pointer among the keys just compared: no
            // clone of `K` is needed.
            map.entries.retain(|k, _| !std::ptr::eq(k, victim));
        }
        let value = make();
        map.entries.insert(
            key,
            Entry {
                value: value.clone(),
                used: AtomicBool::new(false),
                last_used: now,
            },
        );
        Some(value)
    }
}

/// Dates the entries used since the previous scan at `now` and clears their marks.
fn scan<K, V>(map: &mut Map<K, V>, now: u64) {
    for e in map.entries.values_mut() {
        if std::mem::take(e.used.get_mut()) {
            e.last_used = now;
        }
    }
    map.last_scan = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank_all(_: &u32) -> Evict {
        Evict::First
    }

    /// A hit takes no exclusive lock: it goes through while another reader holds
    /// the map (a hit under a mutex would block here for ever).
    #[test]
    fn a_hit_only_reads_the_map() {
        let map: KeyedMap<&str, u32> = KeyedMap::new(4, Duration::from_secs(60));
        map.get_or_insert("a", || 1, rank_all);
        let held = map.read();
        let hit = std::thread::scope(|s| s.spawn(|| map.get(&"a")).join().unwrap());
        drop(held);
        assert_eq!(hit, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_entries_go_first_then_the_least_recently_used_evictable_one() {
        let map: KeyedMap<u32, u32> = KeyedMap::new(2, Duration::from_secs(60));
        let never_2 = |v: &u32| if *v == 2 { Evict::Never } else { Evict::First };
        map.get_or_insert(1, || 1, never_2);
        map.get_or_insert(2, || 2, never_2);
        tokio::time::advance(Duration::from_secs(1)).await;
        // 2 may not go: 1 does, though used more recently than 2.
        map.get(&1);
        assert_eq!(map.get_or_insert(3, || 3, never_2), Some(3));
        assert_eq!((map.peek(&1), map.peek(&2)), (None, Some(2)));
        // Nothing evictable: the insert fails.
        let never = |_: &u32| Evict::Never;
        assert_eq!(map.get_or_insert(4, || 4, never), None);
        // Idle ones go whatever their rank.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(map.get_or_insert(4, || 4, never), Some(4));
        assert_eq!(map.len(), 1);
    }
}
