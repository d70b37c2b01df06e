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
//!
//! # Why the counters live in a recycled `&'static` block
//!
//! A permit must reach the counters when it is dropped, possibly after every service
//! and handle of its bulkhead is gone. Holding an `Arc` would cost two more atomic
//! read-modify-writes per call (clone and drop of the reference count), doubling the
//! cost of the success path. Instead the counters live in a [`Block`] that is
//! allocated once and never freed: when a bulkhead is dropped its block goes to a
//! process-wide free list and the next bulkhead reuses it. Memory is therefore bounded
//! by the largest number of bulkheads alive at once (about 2.6 KiB each).
//!
//! Every counter word carries the block's *generation* in its top 24 bits, and a
//! permit remembers the generation it was taken from. A permit that outlives its
//! bulkhead finds another generation when it returns its token, and does nothing: its
//! compare-and-swap fails. (A permit would have to outlive 2^24 reuses of its block
//! for the generation to wrap.)

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering::*;
use std::task::Waker;

#[cfg(test)]
use crate::shard;
use crate::shard::{Padded, SHARDS};
use crate::sync::{AtomicU64, AtomicUsize, Mutex};

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

const GEN_SHIFT: u32 = 40;
const COUNT: u64 = (1 << GEN_SHIFT) - 1;
const GEN_MASK: u64 = (1 << 24) - 1;

#[inline]
fn word(generation: u64, count: u64) -> u64 {
    (generation << GEN_SHIFT) | count
}

/// The counters of one bulkhead; allocated once, reused by later bulkheads.
pub(crate) struct Block {
    local: [Padded<AtomicU64>; SHARDS],
    pool: Padded<AtomicU64>,
    hot: Padded<Hot>,
    limit: AtomicUsize,
    max_queued: AtomicUsize,
    rejected: AtomicU64,
    /// Callers rejected or queued so far: a sign the limit binds.
    pressure: AtomicU64,
    queue: Mutex<Queue>,
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("limit", &self.limit.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// Blocks of dropped bulkheads, with the generation they will be used with next.
/// (Under loom every model execution makes its own objects: blocks are not reused.)
#[cfg(not(tower_fortify_loom))]
static FREE: std::sync::Mutex<Vec<(&'static Block, u32)>> = std::sync::Mutex::new(Vec::new());

/// A reference to one generation of a block: what a permit needs to give its token
/// back. Copy, no reference count.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    block: &'static Block,
    /// The generation (low 32 bits) and the shard a permit returns its token to, the
    /// one it was taken from (high 32 bits). One word, written with one store: two
    /// 32-bit fields read back as one word cost a store-forwarding stall per call.
    tag: u64,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("generation", &self.g())
            .finish()
    }
}

/// The shared state of one bulkhead: one generation of a block, recycled on drop.
#[derive(Debug)]
pub(crate) struct Core {
    t: Ticket,
}

fn batch_for(limit: usize) -> usize {
    (limit / (SHARDS * 4)).max(1)
}

impl Drop for Core {
    fn drop(&mut self) {
        let (block, generation) = (self.t.block, self.t.g() as u32);
        let next = (generation + 1) & GEN_MASK as u32;
        {
            let mut q = block.queue.lock().unwrap_or_else(|e| e.into_inner());
            *q = Queue::default();
            for l in &block.local {
                l.store(word(next.into(), 0), SeqCst);
            }
            block.pool.store(word(next.into(), 0), SeqCst);
            block.hot.waiters.store(0, SeqCst);
            block.hot.debt.store(0, SeqCst);
        }
        #[cfg(not(tower_fortify_loom))]
        FREE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((block, next));
    }
}

impl Core {
    pub(crate) fn new(limit: usize, max_queued: usize) -> Self {
        #[cfg(not(tower_fortify_loom))]
        let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        #[cfg(tower_fortify_loom)]
        let reused: Option<(&'static Block, u32)> = None;
        let (block, generation) = reused.unwrap_or_else(|| {
            let block: &'static Block = Box::leak(Box::new(Block {
                local: Default::default(),
                pool: Padded(AtomicU64::new(0)),
                hot: Padded(Hot::default()),
                limit: AtomicUsize::new(0),
                max_queued: AtomicUsize::new(0),
                rejected: AtomicU64::new(0),
                pressure: AtomicU64::new(0),
                queue: Mutex::new(Queue::default()),
            }));
            (block, 0)
        });
        block.limit.store(limit, SeqCst);
        block.max_queued.store(max_queued, SeqCst);
        block.rejected.store(0, SeqCst);
        block.pressure.store(0, SeqCst);
        block.hot.batch.store(batch_for(limit), SeqCst);
        block
            .pool
            .store(word(generation.into(), limit as u64 & COUNT), SeqCst);
        Self {
            t: Ticket {
                block,
                tag: u64::from(generation),
            },
        }
    }

    /// What a permit keeps to return its token.
    #[inline]
    pub(crate) fn ticket(&self) -> Ticket {
        self.t
    }
}

impl std::ops::Deref for Core {
    type Target = Ticket;

    #[inline]
    fn deref(&self) -> &Ticket {
        &self.t
    }
}

impl Ticket {
    /// This ticket, returning its token to shard `i`.
    #[inline]
    pub(crate) fn at(self, i: usize) -> Self {
        Self {
            tag: (self.tag & 0xffff_ffff) | ((i as u64) << 32),
            ..self
        }
    }

    #[inline]
    fn g(&self) -> u64 {
        self.tag & 0xffff_ffff
    }

    #[cfg(test)]
    pub(crate) fn try_acquire(&self) -> bool {
        self.try_acquire_at(shard::index())
    }

    /// Takes a token without waiting, for a thread whose shard is `i`. Fails when none
    /// is free or callers are queued (a newcomer never overtakes a waiter).
    #[inline]
    pub(crate) fn try_acquire_at(&self, i: usize) -> bool {
        let b = self.block;
        if b.hot.waiters.load(Relaxed) != 0 || b.hot.debt.load(Relaxed) != 0 {
            return false;
        }
        if take_up_to(&b.local[i], 1, self.g()) == 1 {
            return true;
        }
        self.refill(i)
    }

    /// Takes one token from the pool or another shard, keeping the rest of what it
    /// took in shard `i`.
    fn refill(&self, i: usize) -> bool {
        let (b, g) = (self.block, self.g());
        let batch = b.hot.batch.load(Relaxed) as u64;
        let took = take_up_to(&b.pool, batch, g);
        if took > 0 {
            if took > 1 {
                add(&b.local[i], took - 1, g);
            }
            return true;
        }
        for k in 1..SHARDS {
            let j = (i + k) % SHARDS;
            let took = take_up_to(&b.local[j], COUNT, g);
            if took > 0 {
                if took > 1 {
                    add(&b.local[i], took - 1, g);
                }
                return true;
            }
        }
        false
    }

    /// Takes one free token from anywhere (pool first, then every shard).
    fn take_any(&self) -> bool {
        let (b, g) = (self.block, self.g());
        if take_up_to(&b.pool, 1, g) == 1 {
            return true;
        }
        b.local.iter().any(|l| take_up_to(l, 1, g) == 1)
    }

    /// Slow path: pays limit debt first, then hands free tokens to waiters in order.
    #[inline(never)]
    fn settle(&self) {
        let mut q = self.block.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.settle_locked(&mut q);
    }

    fn settle_locked(&self, q: &mut Queue) {
        let hot = &self.block.hot;
        loop {
            let debt = hot.debt.load(SeqCst);
            if debt == 0 {
                break;
            }
            if !self.take_any() {
                return;
            }
            // Only code under this lock changes the debt.
            hot.debt.store(debt - 1, SeqCst);
        }
        while !q.waiting.is_empty() {
            if !self.take_any() {
                return;
            }
            let (id, waker) = q.waiting.pop_front().expect("not empty");
            hot.waiters.fetch_sub(1, SeqCst);
            q.granted.push(id);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Queues the caller unless the queue is full; takes a token if one turned up.
    pub(crate) fn enqueue(&self) -> Enqueued {
        let b = self.block;
        let mut q = b.queue.lock().unwrap_or_else(|e| e.into_inner());
        b.pressure.fetch_add(1, Relaxed);
        if q.waiting.is_empty() && b.hot.debt.load(SeqCst) == 0 && self.take_any() {
            return Enqueued::Acquired;
        }
        if q.waiting.len() >= b.max_queued.load(Relaxed) {
            return Enqueued::Full;
        }
        let id = q.next_id;
        q.next_id += 1;
        q.waiting.push_back((id, None));
        b.hot.waiters.fetch_add(1, SeqCst);
        crate::sync::seqcst_handshake();
        // A token released before the registration above was seen by nobody: look.
        self.settle_locked(&mut q);
        Enqueued::Waiting(id)
    }

    /// Polls a waiter: granted (it now holds a token) or still waiting (waker stored).
    pub(crate) fn poll_wait(&self, id: u64, waker: &Waker) -> WaitState {
        let mut q = self.block.queue.lock().unwrap_or_else(|e| e.into_inner());
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
        let b = self.block;
        let mut q = b.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = q.granted.iter().position(|g| *g == id) {
            q.granted.swap_remove(pos);
            return true;
        }
        if let Some(pos) = q.waiting.iter().position(|(i, _)| *i == id) {
            q.waiting.remove(pos);
            b.hot.waiters.fetch_sub(1, SeqCst);
        }
        false
    }

    /// Changes the limit. An increase frees tokens at once (waking waiters); a
    /// decrease destroys free tokens and owes the rest until calls finish.
    pub(crate) fn set_limit(&self, new: usize) {
        let b = self.block;
        let mut q = b.queue.lock().unwrap_or_else(|e| e.into_inner());
        let old = b.limit.swap(new, SeqCst);
        b.hot.batch.store(batch_for(new), Relaxed);
        if new > old {
            let mut mint = new - old;
            // Cancel debt before minting tokens.
            let debt = b.hot.debt.load(SeqCst);
            let cancel = debt.min(mint);
            b.hot.debt.fetch_sub(cancel, SeqCst);
            mint -= cancel;
            add(&b.pool, mint as u64, self.g());
        } else if new < old {
            b.hot.debt.fetch_add(old - new, SeqCst);
        }
        self.settle_locked(&mut q);
    }

    pub(crate) fn set_max_queued(&self, max_queued: usize) {
        self.block.max_queued.store(max_queued, Relaxed);
    }

    pub(crate) fn limit(&self) -> usize {
        self.block.limit.load(Relaxed)
    }

    pub(crate) fn max_queued(&self) -> usize {
        self.block.max_queued.load(Relaxed)
    }

    /// Free tokens right now (a racy sum, for reporting).
    fn free(&self) -> usize {
        let b = self.block;
        let count = |w: &AtomicU64| (w.load(SeqCst) & COUNT) as usize;
        count(&b.pool) + b.local.iter().map(|l| count(l)).sum::<usize>()
    }

    /// Calls holding a permit (a snapshot). Granted but uncollected tokens count.
    pub(crate) fn in_flight(&self) -> usize {
        (self.limit() + self.block.hot.debt.load(SeqCst)).saturating_sub(self.free())
    }

    /// Callers waiting in the queue.
    pub(crate) fn queued(&self) -> usize {
        self.block.hot.waiters.load(SeqCst)
    }

    pub(crate) fn note_rejected(&self) {
        self.block.rejected.fetch_add(1, Relaxed);
        self.block.pressure.fetch_add(1, Relaxed);
    }

    /// Rejections and queued callers so far.
    pub(crate) fn pressure(&self) -> u64 {
        self.block.pressure.load(Relaxed)
    }

    /// Rejections so far.
    pub(crate) fn rejected(&self) -> u64 {
        self.block.rejected.load(Relaxed)
    }
}

impl Ticket {
    /// Returns a token to the permit's shard; a no-op if the bulkhead is gone.
    #[inline]
    pub(crate) fn release(&self) {
        let (b, g) = (self.block, self.g());
        let i = (self.tag >> 32) as usize % SHARDS;
        let Some(after) = add(&b.local[i], 1, g) else {
            return;
        };
        crate::sync::seqcst_handshake();
        if b.hot.waiters.load(SeqCst) != 0 || b.hot.debt.load(SeqCst) != 0 {
            self.settle();
            return;
        }
        let batch = b.hot.batch.load(Relaxed) as u64;
        if after > 2 * batch {
            let spill = take_up_to(&b.local[i], after - batch, g);
            if spill > 0 {
                add(&b.pool, spill, g);
            }
        }
    }
}

/// Takes up to `max` from `cell` (at least one if it is not zero) if the cell is of
/// generation `g`; returns how many.
#[inline]
fn take_up_to(cell: &AtomicU64, max: u64, g: u64) -> u64 {
    let mut cur = cell.load(SeqCst);
    loop {
        let count = cur & COUNT;
        if count == 0 || cur >> GEN_SHIFT != g {
            return 0;
        }
        let take = count.min(max);
        match cell.compare_exchange_weak(cur, cur - take, SeqCst, SeqCst) {
            Ok(_) => return take,
            Err(actual) => cur = actual,
        }
    }
}

/// Adds `n` to `cell` if it is of generation `g`; returns the new count.
#[inline]
fn add(cell: &AtomicU64, n: u64, g: u64) -> Option<u64> {
    let mut cur = cell.load(SeqCst);
    loop {
        if cur >> GEN_SHIFT != g {
            return None;
        }
        match cell.compare_exchange_weak(cur, cur + n, SeqCst, SeqCst) {
            Ok(_) => return Some((cur & COUNT) + n),
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serializes the tests of this module, which share the free list of blocks.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_permit_that_outlives_its_bulkhead_does_not_touch_the_next_one() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let a = Core::new(2, 0);
        let stale = a.ticket();
        assert!(a.try_acquire());
        let block = stale.block as *const Block;
        drop(a);
        let b = Core::new(2, 0);
        assert!(std::ptr::eq(b.ticket().block, block), "the block is reused");
        assert_ne!(b.ticket().g(), stale.g());
        stale.release(); // must be a no-op
        assert_eq!(b.in_flight(), 0);
        assert!(b.try_acquire());
        assert!(b.try_acquire());
        assert!(!b.try_acquire(), "still exactly the new limit");
        b.release();
        b.release();
        assert_eq!(b.in_flight(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire(usize),
        /// Release the n-th held permit (modulo), returning it to shard `s`.
        Release(usize, usize),
        SetLimit(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (0..SHARDS).prop_map(Op::Acquire),
            5 => (0usize..64, 0..SHARDS).prop_map(|(n, s)| Op::Release(n, s)),
            1 => (1usize..40).prop_map(Op::SetLimit),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Threads are simulated by choosing the shard of every acquire and release:
        /// tokens move between shards, the pool and calls exactly. A call is admitted
        /// if and only if fewer calls than the limit are in flight (stealing finds a
        /// free token wherever it is), and the count is exact at every step.
        #[test]
        fn shards_and_pool_keep_the_count_exact(
            limit in 1usize..40,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            let core = Core::new(limit, 0);
            let mut limit = limit;
            let mut held: Vec<Ticket> = Vec::new();
            for op in ops {
                match op {
                    Op::Acquire(i) => {
                        let got = core.try_acquire_at(i);
                        proptest::prop_assert_eq!(got, held.len() < limit, "limit {}", limit);
                        if got {
                            held.push(core.ticket().at(i));
                        }
                    }
                    Op::Release(n, s) => {
                        if !held.is_empty() {
                            let t = held.swap_remove(n % held.len());
                            t.at(s).release();
                        }
                    }
                    Op::SetLimit(n) => {
                        core.set_limit(n);
                        limit = n;
                    }
                }
                proptest::prop_assert_eq!(core.in_flight(), held.len());
            }
            for t in held.drain(..) {
                t.release();
            }
            proptest::prop_assert_eq!(core.in_flight(), 0);
        }
    }

    #[test]
    fn tokens_are_conserved() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

/// loom models of the release/enqueue handshake: a finishing call adds its token to
/// its shard, then reads `waiters`; a queued caller registers in `waiters`, then
/// searches every shard. Run with `RUSTFLAGS="--cfg tower_fortify_loom" cargo test --release --lib
/// loom`.
#[cfg(all(test, tower_fortify_loom))]
mod loom_models {
    use std::task::Waker;

    use super::*;

    /// A token released while another caller joins the queue is never left free
    /// while that caller waits: it takes the token at once, or is granted it.
    #[test]
    fn loom_a_release_racing_an_enqueue_never_strands_the_waiter() {
        loom::model(|| {
            let core = Core::new(1, 1);
            let held = core.ticket().at(0);
            assert!(held.try_acquire_at(0));
            let releaser = loom::thread::spawn(move || held.release());
            let mine = if core.try_acquire_at(1) {
                true
            } else {
                match core.enqueue() {
                    Enqueued::Acquired => true,
                    Enqueued::Waiting(id) => {
                        releaser.join().unwrap();
                        assert_eq!(
                            core.poll_wait(id, Waker::noop()),
                            WaitState::Granted,
                            "the released token went to the waiter"
                        );
                        core.ticket().at(1).release();
                        assert_eq!(core.in_flight(), 0);
                        return;
                    }
                    Enqueued::Full => panic!("room for one waiter"),
                }
            };
            assert!(mine);
            releaser.join().unwrap();
            assert_eq!(core.in_flight(), 1);
            core.ticket().at(1).release();
            assert_eq!(core.in_flight(), 0);
        });
    }

    /// A waiter that gives up while a token is released to it either was granted the
    /// token (and now owns it) or leaves the token free: none is lost.
    #[test]
    fn loom_a_waiter_leaving_while_granted_loses_no_token() {
        loom::model(|| {
            let core = Core::new(1, 1);
            let held = core.ticket().at(0);
            assert!(held.try_acquire_at(0));
            let Enqueued::Waiting(id) = core.enqueue() else {
                panic!("the only token is held");
            };
            let releaser = loom::thread::spawn(move || held.release());
            let owned = core.leave(id);
            releaser.join().unwrap();
            if owned {
                core.ticket().at(1).release();
            }
            assert_eq!(core.in_flight(), 0);
            assert!(core.try_acquire_at(1), "the token is free again");
            core.ticket().at(1).release();
        });
    }
}
