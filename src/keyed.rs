//! A bounded map of per-key state (a breaker or a bulkhead per host or tenant),
//! shared by the keyed circuit breaker and the keyed bulkhead.
//!
//! **The hit path** takes no lock. Each service clone keeps a [`View`]: the immutable
//! snapshot of the map it last saw (an `Arc`). A hit checks that the snapshot is
//! still current (one atomic load of the map's version), finds the key in it, clones
//! the value's `Arc` and marks the entry used: one store, and only if the mark was
//! clear (a mark already set is only read, so a hot key's line is not written by
//! every call). It reads no clock: a clock read is a lock of its own in a paused
//! runtime. Keys are hashed with a seeded multiply-and-fold hash, a few instructions
//! for an integer key, instead of SipHash: the map is bounded, so a key chosen to
//! collide costs at most a scan of `max_keys` entries.
//!
//! **Changes.** A miss, or a snapshot made stale by a change, takes the map's read
//! lock to pick up the current snapshot; a key still missing takes the write lock and
//! inserts, at most `max_keys` entries, then publishes a new snapshot (a copy of the
//! entries' `Arc`s, O(`max_keys`), only when the map changes) and bumps the version.
//!
//! **The bound.** At the bound, entries idle for `idle` are evicted first; if none is,
//! the least recently used entry the caller ranks [`Evict::First`] goes, then one it
//! ranks [`Evict::Last`]; entries ranked [`Evict::Never`] stay, and the insert fails
//! when nothing may go. Recency is measured without a clock on the hit path: each scan
//! (on a miss at the bound, or at most every `idle / 4` on any miss) dates the
//! entries marked since the previous scan at the scan's time and clears their mark.
//! An entry's recorded last use is therefore never earlier than its real one, so
//! nothing used within `idle` is taken for idle; an idle entry may outlive `idle` by
//! the time between two scans. The scan is O(`max_keys`) and only runs on a miss.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::clock::{Epoch, nanos};
use crate::config::ConfigError;
use crate::observe::Listeners;

/// Names a key in its state's events, logs and metrics (`key_label`).
pub(crate) type KeyLabel<K> = Arc<dyn Fn(&K) -> String + Send + Sync>;

/// The settings every keyed builder has, named alike in every layer (`max_keys`,
/// `idle_timeout`, and `key_label` where a key's state reports events of its own):
/// the bound of the map, when an entry counts as idle, and how a key is named. `L` is
/// the label (`Option<KeyLabel<K>>`), or `()` for a layer whose keys have no events.
pub(crate) struct KeySettings<L = ()> {
    pub(crate) max_keys: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) label: L,
}

impl<L: Default> KeySettings<L> {
    pub(crate) fn new(max_keys: usize, idle_timeout: Duration) -> Self {
        Self {
            max_keys,
            idle_timeout,
            label: L::default(),
        }
    }
}

impl<L> KeySettings<L> {
    /// Rejects no room for a key and a zero idle timeout, naming the layer's fields.
    pub(crate) fn validate(
        &self,
        max_keys_field: &'static str,
        idle_timeout_field: &'static str,
    ) -> Result<(), ConfigError> {
        if self.max_keys == 0 {
            return Err(ConfigError::new(max_keys_field, "must be at least 1"));
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::new(
                idle_timeout_field,
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// The map these settings describe.
    pub(crate) fn map<K, V>(&self) -> KeyedMap<K, V> {
        KeyedMap::new(self.max_keys, self.idle_timeout)
    }
}

impl<K> KeySettings<Option<KeyLabel<K>>> {
    /// `listeners` named for `key`: `"{name}/{label(key)}"` with a label, `listeners`
    /// as they are without. Called once per key, when its state is made.
    #[cfg_attr(not(feature = "circuit-breaker"), allow(dead_code))]
    pub(crate) fn listeners_for(&self, listeners: &Listeners, key: &K) -> Listeners {
        listeners_for(self.label.as_ref(), listeners, key)
    }
}

impl<L> fmt::Debug for KeySettings<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySettings")
            .field("max_keys", &self.max_keys)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// `listeners` named `"{name}/{label(key)}"` with a label, as they are without.
#[cfg_attr(
    not(any(feature = "bulkhead", feature = "circuit-breaker")),
    allow(dead_code)
)]
pub(crate) fn listeners_for<K>(
    label: Option<&KeyLabel<K>>,
    listeners: &Listeners,
    key: &K,
) -> Listeners {
    match label {
        Some(label) => {
            let name = match listeners.name() {
                "" => label(key),
                base => format!("{base}/{}", label(key)),
            };
            listeners.clone().named(name)
        }
        None => listeners.clone(),
    }
}

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

/// A seeded multiply-and-fold hash (see the module docs for why not SipHash).
#[derive(Clone, Copy)]
pub(crate) struct FastState(u64);

impl FastState {
    fn new() -> Self {
        Self(RandomState::new().hash_one(0x5eed_u64) | 1)
    }
}

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn mix(&mut self, x: u64) {
        let m = u128::from(self.0 ^ x) * u128::from(MUL);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("eight bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.mix(u64::from(x));
    }

    #[inline]
    fn write_u16(&mut self, x: u16) {
        self.mix(u64::from(x));
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.mix(u64::from(x));
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.mix(x);
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.mix(x as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let m = u128::from(self.0) * u128::from(MUL ^ 0xA076_1D64_78BD_642F);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

struct Entry<V> {
    value: V,
    /// Set by a hit, cleared by a scan.
    used: AtomicBool,
}

struct Stored<V> {
    entry: Arc<Entry<V>>,
    /// Nanoseconds since the epoch: the last scan that found the entry used, or its
    /// insertion. Written under the write lock only.
    last_used: u64,
}

/// The map as of one version: what hits read, without a lock.
pub(crate) struct Snapshot<K, V> {
    version: u64,
    entries: HashMap<Arc<K>, Arc<Entry<V>>, FastState>,
}

/// A service clone's view of the map: the snapshot it last saw.
pub(crate) struct View<K, V>(Arc<Snapshot<K, V>>);

impl<K, V> Clone for View<K, V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Map<K, V> {
    entries: HashMap<Arc<K>, Stored<V>, FastState>,
    last_scan: u64,
    snapshot: Arc<Snapshot<K, V>>,
}

pub(crate) struct KeyedMap<K, V> {
    map: RwLock<Map<K, V>>,
    /// The current snapshot's version, bumped under the write lock when it changes.
    version: AtomicU64,
    epoch: Epoch,
    max_keys: usize,
    /// Nanoseconds; changeable after construction (a layer's setter).
    idle: AtomicU64,
}

impl<K, V> KeyedMap<K, V> {
    pub(crate) fn new(max_keys: usize, idle: Duration) -> Self {
        let hasher = FastState::new();
        Self {
            map: RwLock::new(Map {
                entries: HashMap::with_hasher(hasher),
                last_scan: 0,
                snapshot: Arc::new(Snapshot {
                    version: 0,
                    entries: HashMap::with_hasher(hasher),
                }),
            }),
            version: AtomicU64::new(0),
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

    /// A view of the map as it is now, for a new service.
    pub(crate) fn view(&self) -> View<K, V> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        View(map.snapshot.clone())
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

    /// The value of `key` in `view`, marked used, if the view is current: no lock.
    #[inline]
    fn hit(&self, view: &View<K, V>, key: &K) -> Option<V> {
        let snap = &view.0;
        if snap.version != self.version.load(Ordering::Acquire) {
            return None;
        }
        let e = snap.entries.get(key)?;
        if !e.used.load(Ordering::Relaxed) {
            e.used.store(true, Ordering::Relaxed);
        }
        Some(e.value.clone())
    }

    /// The value of `key`, without marking it used (for handles).
    pub(crate) fn peek(&self, key: &K) -> Option<V> {
        self.read().entries.get(key).map(|e| e.entry.value.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// The value of `key`, made by `make` and inserted if it has none; `None` when the
    /// map is full and `rank` allows no eviction. Without a view: a hit takes the read
    /// lock (for callers that keep no view).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn get_or_insert(
        &self,
        key: K,
        make: impl FnOnce(&K) -> V,
        rank: impl Fn(&V) -> Evict,
    ) -> Option<V> {
        if let Some(e) = self.read().entries.get(&key) {
            if !e.entry.used.load(Ordering::Relaxed) {
                e.entry.used.store(true, Ordering::Relaxed);
            }
            return Some(e.entry.value.clone());
        }
        self.insert_slow(key, make, rank)
    }

    /// The value of `key`, made by `make` and inserted if it has none; `None` when the
    /// map is full and `rank` allows no eviction. `view` is the caller's view, brought
    /// up to date when it is stale; a hit in a current view takes no lock.
    #[cfg_attr(
        not(any(feature = "bulkhead", feature = "circuit-breaker")),
        allow(dead_code)
    )]
    #[inline]
    pub(crate) fn get_or_insert_in(
        &self,
        view: &mut View<K, V>,
        key: K,
        make: impl FnOnce(&K) -> V,
        rank: impl Fn(&V) -> Evict,
    ) -> Option<V> {
        if let Some(v) = self.hit(view, &key) {
            return Some(v);
        }
        self.miss(view, key, make, rank)
    }

    #[cold]
    #[inline(never)]
    fn miss(
        &self,
        view: &mut View<K, V>,
        key: K,
        make: impl FnOnce(&K) -> V,
        rank: impl Fn(&V) -> Evict,
    ) -> Option<V> {
        {
            let map = self.read();
            view.0 = map.snapshot.clone();
            if let Some(e) = map.entries.get(&key) {
                e.entry.used.store(true, Ordering::Relaxed);
                return Some(e.entry.value.clone());
            }
        }
        let v = self.insert_slow(key, make, rank);
        view.0 = self.read().snapshot.clone();
        v
    }

    fn insert_slow(
        &self,
        key: K,
        make: impl FnOnce(&K) -> V,
        rank: impl Fn(&V) -> Evict,
    ) -> Option<V> {
        let now = self.epoch.now();
        let idle = self.idle.load(Ordering::Relaxed);
        let mut map = self.write();
        if let Some(e) = map.entries.get(&key) {
            e.entry.used.store(true, Ordering::Relaxed);
            return Some(e.entry.value.clone());
        }
        let full = map.entries.len() >= self.max_keys;
        if full || now.saturating_sub(map.last_scan) >= idle / 4 {
            scan(&mut map, now);
        }
        if full {
            map.entries
                .retain(|_, e| now.saturating_sub(e.last_used) < idle);
            if map.entries.len() < self.max_keys {
                // Idle entries went: views must not hand them out any more, even if
                // the insert below is the only change they would otherwise see.
                self.publish(&mut map);
            }
        }
        if map.entries.len() >= self.max_keys {
            let victim = map
                .entries
                .iter()
                .map(|(k, e)| (rank(&e.entry.value), e.last_used, k))
                .filter(|(r, _, _)| *r != Evict::Never)
                .min_by_key(|(r, at, _)| (*r, *at))
                .map(|(_, _, k)| k.clone());
            let victim = victim?;
            map.entries.remove(&*victim);
        }
        let value = make(&key);
        map.entries.insert(
            Arc::new(key),
            Stored {
                entry: Arc::new(Entry {
                    value: value.clone(),
                    used: AtomicBool::new(false),
                }),
                last_used: now,
            },
        );
        self.publish(&mut map);
        Some(value)
    }

    /// Publishes the entries as a new snapshot (under the write lock).
    fn publish(&self, map: &mut Map<K, V>) {
        let version = map.snapshot.version + 1;
        let mut entries =
            HashMap::with_capacity_and_hasher(map.entries.len(), *map.entries.hasher());
        for (k, e) in &map.entries {
            entries.insert(k.clone(), e.entry.clone());
        }
        map.snapshot = Arc::new(Snapshot { version, entries });
        self.version.store(version, Ordering::Release);
    }
}

/// Dates the entries used since the previous scan at `now` and clears their marks.
fn scan<K, V>(map: &mut Map<K, V>, now: u64) {
    for e in map.entries.values_mut() {
        if e.entry.used.swap(false, Ordering::Relaxed) {
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

    /// A hit takes no lock at all: it goes through while another thread holds the
    /// map's write lock (a hit under the read lock would block here for ever).
    #[test]
    fn a_hit_takes_no_lock() {
        let map: KeyedMap<&str, u32> = KeyedMap::new(4, Duration::from_secs(60));
        let mut view = map.view();
        map.get_or_insert_in(&mut view, "a", |_| 1, rank_all);
        let held = map.write();
        let hit = std::thread::scope(|s| {
            s.spawn(|| map.get_or_insert_in(&mut view, "a", |_| 2, rank_all))
                .join()
                .unwrap()
        });
        drop(held);
        assert_eq!(hit, Some(1));
    }

    /// A view made stale by an insert elsewhere, or by an eviction, picks up the
    /// current map: an evicted value is never handed out again.
    #[tokio::test(start_paused = true)]
    async fn a_stale_view_sees_inserts_and_evictions() {
        let map: KeyedMap<u32, u32> = KeyedMap::new(1, Duration::from_secs(60));
        let (mut a, mut b) = (map.view(), map.view());
        assert_eq!(map.get_or_insert_in(&mut a, 1, |_| 10, rank_all), Some(10));
        assert_eq!(map.get_or_insert_in(&mut b, 1, |_| 11, rank_all), Some(10));
        // `b` evicts 1 for 2 (the bound is one key); `a` must not keep using 1's value.
        assert_eq!(map.get_or_insert_in(&mut b, 2, |_| 20, rank_all), Some(20));
        assert_eq!(map.get_or_insert_in(&mut a, 1, |_| 12, rank_all), Some(12));
        assert_eq!(map.peek(&2), None, "1 took the only place back");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_entries_go_first_then_the_least_recently_used_evictable_one() {
        let map: KeyedMap<u32, u32> = KeyedMap::new(2, Duration::from_secs(60));
        let mut view = map.view();
        let never_2 = |v: &u32| if *v == 2 { Evict::Never } else { Evict::First };
        map.get_or_insert_in(&mut view, 1, |_| 1, never_2);
        map.get_or_insert_in(&mut view, 2, |_| 2, never_2);
        tokio::time::advance(Duration::from_secs(1)).await;
        // 2 may not go: 1 does, though used more recently than 2.
        map.get_or_insert_in(&mut view, 1, |_| 1, never_2);
        assert_eq!(map.get_or_insert_in(&mut view, 3, |_| 3, never_2), Some(3));
        assert_eq!((map.peek(&1), map.peek(&2)), (None, Some(2)));
        // Nothing evictable: the insert fails.
        let never = |_: &u32| Evict::Never;
        assert_eq!(map.get_or_insert_in(&mut view, 4, |_| 4, never), None);
        // Idle ones go whatever their rank.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(map.get_or_insert_in(&mut view, 4, |_| 4, never), Some(4));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn the_hash_spreads_integers_and_strings() {
        let h = FastState(1);
        let a: std::collections::HashSet<u64> = (0..1000u64).map(|i| h.hash_one(i) >> 57).collect();
        assert!(a.len() > 100, "top bits vary: {}", a.len());
        assert_ne!(h.hash_one("ab"), h.hash_one("ba"));
        assert_ne!(h.hash_one("a"), h.hash_one("a\0"));
    }
}
