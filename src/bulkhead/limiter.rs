//! The sharded permit pool behind every bulkhead.
//!
//! # How the count stays exact without a shared counter
//!
//! The limit is a number of *tokens*. A free token lives either in one of the
//! per-thread shards (`local`) or in the shared `pool`; a call in flight holds one.
//! Tokens are only ever moved with atomic read-modify-write operations, never created
//! or destroyed except by a limit change, so at every instant
//!
//! ```text
//! free tokens (shards + pool) + calls in flight = limit + debt
//! ```
//!
//! where `debt` counts tokens a limit decrease still has to destroy when calls finish.
//! Hence calls in flight never exceed the limit (after a decrease, no call is admitted
//! until the debt is paid).
//!
//! A thread takes a token from its own shard (one compare-and-swap on a cache line no
//! other thread writes in the steady state), refills its shard from the pool a batch
//! at a time, steals from other shards when the pool is empty, and returns tokens to
//! its own shard, spilling a batch back to the pool when the shard holds too many.
//!
//! Waiters (the bounded FIFO queue) and debt are handled on a slow path under a mutex.
//! A finishing call adds its token to its shard and then reads `waiters` and `debt`;
//! a queued caller registers in `waiters` and then searches every shard. Both use
//! sequentially consistent operations, so one of them always sees the other: a token
//! is never left free while a waiter sleeps.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::task::Waker;

use crate::shard::{self, Padded, SHARDS};

/// The slow-path state: waiters in arrival order and grants not yet collected.
#[derive(Debug, Default)]
struct Queue {
    next_id: u64,
    waiting: VecDeque<(u64, Option<Waker>)>,
    /// Waiters that were handed a token but have not polled yet.
    granted: Vec<u64>,
}

/// What [`Core::enqueue`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// A token was found after all: the caller holds it.
    Acquired,
    /// The caller waits with this id.
    Waiting(u64),
    /// The queue is full.
    Full,
}

/// What a waiter learns when it polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitState {
    Granted,
    Waiting,
}

#[derive(Debug, Default)]
struct Hot {
    /// Callers in the queue (not yet granted).
    waiters: AtomicUsize,
    /// Tokens still to destroy after a limit decrease.
    debt: AtomicUsize,
    /// Tokens a thread takes from the pool at once.
    batch: AtomicUsize,
}

/// The shared state of one bulkhead.
#[derive(Debug)]
pub(crate) struct Core {
    local: [Padded<AtomicUsize>; SHARDS],
    pool: Padded<AtomicUsize>,
    hot: Padded<Hot>,
    limit: AtomicUsize,
    max_queued: AtomicUsize,
    rejected: AtomicU64,
    /// Callers rejected or queued so far: a sign the limit binds.
    pressure: AtomicU64,
    queue: Mutex<Queue>,
}

fn batch_for(limit: usize) -> usize {
    (limit / (SHARDS * 4)).max(1)
}

impl Core {
    pub(crate) fn new(limit: usize, max_queued: usize) -> Self {
        Self {
            local: Default::default(),
            pool: Padded(AtomicUsize::new(limit)),
            hot: Padded(Hot {
                waiters: AtomicUsize::new(0),
                debt: AtomicUsize::new(0),
                batch: AtomicUsize::new(batch_for(limit)),
            }),
            limit: AtomicUsize::new(limit),
            max_queued: AtomicUsize::new(max_queued),
            rejected: AtomicU64::new(0),
            pressure: AtomicU64::new(0),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Takes a token without waiting. Fails when none is free or callers are queued
    /// (so that a newcomer never overtakes a waiter).
    #[cfg(test)]
    pub(crate) fn try_acquire(&self) -> bool {
        self.try_acquire_at(shard::index())
    }

    /// Takes a token without waiting, for a thread whose shard is `i`. Fails when none
    /// is free or callers are queued (a newcomer never overtakes a waiter).
    #[inline]
    pub(crate) fn try_acquire_at(&self, i: usize) -> bool {
        if self.hot.waiters.load(Relaxed) != 0 || self.hot.debt.load(Relaxed) != 0 {
            return false;
        }
        let local = &self.local[i];
        let mut cur = local.load(Relaxed);
        while cur > 0 {
            match local.compare_exchange_weak(cur, cur - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
        self.refill(i)
    }

    /// Takes one token from the pool or another shard, keeping the rest of what it
    /// took in shard `i`.
    fn refill(&self, i: usize) -> bool {
        let batch = self.hot.batch.load(Relaxed);
        let took = take_up_to(&self.pool, batch);
        if took > 0 {
            if took > 1 {
                self.local[i].fetch_add(took - 1, SeqCst);
            }
            return true;
        }
        for k in 1..SHARDS {
            let j = (i + k) % SHARDS;
            let took = take_up_to(&self.local[j], usize::MAX);
            if took > 0 {
                if took > 1 {
                    self.local[i].fetch_add(took - 1, SeqCst);
                }
                return true;
            }
        }
        false
    }

    /// Takes one free token from anywhere (pool first, then every shard).
    fn take_any(&self) -> bool {
        if take_up_to(&self.pool, 1) == 1 {
            return true;
        }
        self.local.iter().any(|l| take_up_to(l, 1) == 1)
    }

    /// Returns a token.
    #[inline]
    pub(crate) fn release(&self) {
        let i = shard::index();
        let local = &self.local[i];
        let after = local.fetch_add(1, SeqCst) + 1;
        if self.hot.waiters.load(SeqCst) != 0 || self.hot.debt.load(SeqCst) != 0 {
            self.settle();
            return;
        }
        let batch = self.hot.batch.load(Relaxed);
        if after > 2 * batch {
            let spill = take_up_to(local, after - batch);
            if spill > 0 {
                self.pool.fetch_add(spill, SeqCst);
            }
        }
    }

    /// Slow path: pays limit debt first, then hands free tokens to waiters in order.
    fn settle(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.settle_locked(&mut q);
    }

    fn settle_locked(&self, q: &mut Queue) {
        loop {
            let debt = self.hot.debt.load(SeqCst);
            if debt == 0 {
                break;
            }
            if !self.take_any() {
                return;
            }
            // Only code under this lock changes the debt.
            self.hot.debt.store(debt - 1, SeqCst);
        }
        while !q.waiting.is_empty() {
            if !self.take_any() {
                return;
            }
            let (id, waker) = q.waiting.pop_front().expect("not empty");
            self.hot.waiters.fetch_sub(1, SeqCst);
            q.granted.push(id);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Queues the caller unless the queue is full; takes a token if one turned up.
    pub(crate) fn enqueue(&self) -> Enqueued {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.pressure.fetch_add(1, Relaxed);
        if q.waiting.is_empty() && self.hot.debt.load(SeqCst) == 0 && self.take_any() {
            return Enqueued::Acquired;
        }
        if q.waiting.len() >= self.max_queued.load(Relaxed) {
            return Enqueued::Full;
        }
        let id = q.next_id;
        q.next_id += 1;
        q.waiting.push_back((id, None));
        self.hot.waiters.fetch_add(1, SeqCst);
        // A token released before the registration above was seen by nobody: look.
        self.settle_locked(&mut q);
        Enqueued::Waiting(id)
    }

    /// Polls a waiter: granted (it now holds a token) or still waiting (waker stored).
    pub(crate) fn poll_wait(&self, id: u64, waker: &Waker) -> WaitState {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = q.granted.iter().position(|g| *g == id) {
            q.granted.swap_remove(pos);
            return WaitState::Granted;
        }
        if let Some(entry) = q.waiting.iter_mut().find(|(i, _)| *i == id) {
            match &entry.1 {
                Some(w) if w.will_wake(waker) => {}
                _ => entry.1 = Some(waker.clone()),
            }
        }
        WaitState::Waiting
    }

    /// A waiter gives up (dropped, or its wait expired). Returns `true` if it had been
    /// granted a token in the meantime, which it now owns.
    pub(crate) fn leave(&self, id: u64) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = q.granted.iter().position(|g| *g == id) {
            q.granted.swap_remove(pos);
            return true;
        }
        if let Some(pos) = q.waiting.iter().position(|(i, _)| *i == id) {
            q.waiting.remove(pos);
            self.hot.waiters.fetch_sub(1, SeqCst);
        }
        false
    }

    /// Changes the limit. An increase frees tokens at once (waking waiters); a
    /// decrease destroys free tokens and owes the rest until calls finish.
    pub(crate) fn set_limit(&self, new: usize) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.limit.swap(new, SeqCst);
        self.hot.batch.store(batch_for(new), Relaxed);
        if new > old {
            let mut add = new - old;
            // Cancel debt before minting tokens.
            let debt = self.hot.debt.load(SeqCst);
            let cancel = debt.min(add);
            self.hot.debt.fetch_sub(cancel, SeqCst);
            add -= cancel;
            self.pool.fetch_add(add, SeqCst);
        } else if new < old {
            self.hot.debt.fetch_add(old - new, SeqCst);
        }
        self.settle_locked(&mut q);
    }

    pub(crate) fn set_max_queued(&self, max_queued: usize) {
        self.max_queued.store(max_queued, Relaxed);
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Relaxed)
    }

    pub(crate) fn max_queued(&self) -> usize {
        self.max_queued.load(Relaxed)
    }

    /// Free tokens right now (a racy sum, for reporting).
    fn free(&self) -> usize {
        self.pool.load(SeqCst) + self.local.iter().map(|l| l.load(SeqCst)).sum::<usize>()
    }

    /// Calls holding a permit (a snapshot).
    pub(crate) fn in_flight(&self) -> usize {
        // Granted but uncollected tokens count as in flight.
        (self.limit() + self.hot.debt.load(SeqCst)).saturating_sub(self.free())
    }

    /// Callers waiting in the queue.
    pub(crate) fn queued(&self) -> usize {
        self.hot.waiters.load(SeqCst)
    }

    pub(crate) fn note_rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
        self.pressure.fetch_add(1, Relaxed);
    }

    /// Rejections and queued callers so far.
    pub(crate) fn pressure(&self) -> u64 {
        self.pressure.load(Relaxed)
    }

    /// Rejections so far.
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }
}

/// Takes up to `max` from `cell` (at least one if it is not zero); returns how many.
#[inline]
fn take_up_to(cell: &AtomicUsize, max: usize) -> usize {
    let mut cur = cell.load(SeqCst);
    loop {
        if cur == 0 {
            return 0;
        }
        let take = cur.min(max);
        match cell.compare_exchange_weak(cur, cur - take, SeqCst, Relaxed) {
            Ok(_) => return take,
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_conserved() {
        let c = Core::new(3, 0);
        assert!(c.try_acquire());
        assert!(c.try_acquire());
        assert!(c.try_acquire());
        assert!(!c.try_acquire());
        assert_eq!(c.in_flight(), 3);
        c.release();
        assert_eq!(c.in_flight(), 2);
        assert!(c.try_acquire());
        c.release();
        c.release();
        c.release();
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn decrease_waits_for_calls() {
        let c = Core::new(2, 0);
        assert!(c.try_acquire());
        assert!(c.try_acquire());
        c.set_limit(1);
        c.release();
        assert_eq!(c.in_flight(), 1);
        assert!(!c.try_acquire());
        c.release();
        assert!(c.try_acquire());
        assert!(!c.try_acquire());
    }

    #[test]
    fn stealing_across_threads() {
        let c = std::sync::Arc::new(Core::new(64, 0));
        let c2 = c.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                assert!(c2.try_acquire());
            }
            for _ in 0..10 {
                c2.release();
            }
        })
        .join()
        .unwrap();
        let mut n = 0;
        while c.try_acquire() {
            n += 1;
        }
        assert_eq!(n, 64);
    }
}
