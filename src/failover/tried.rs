//! Attempt-aware routing: the backends a request has already been sent to.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many backends one [`Tried`] set remembers. Past this, further backends are not
/// recorded (the oldest entries are kept).
pub const TRIED_CAPACITY: usize = 8;

/// The backends one request has been sent to, shared by every copy of the request.
///
/// The router records each backend it sends the request to. When a retry layer above
/// replays the request (by cloning it, or by copying an `http::Request`'s extensions),
/// the copy shares this set, so the next attempt avoids the backends that already
/// took the request as long as another eligible backend is ready.
///
/// A `Tried` is an `Arc` of [`TRIED_CAPACITY`] atomic words, made by the caller once
/// per request that wants attempt-aware routing; recording is lock-free. The set is
/// recycled: when the last copy of a request's set is dropped it is cleared and kept
/// in a small per-thread cache (at most 16), where the next [`Tried::new`] on that
/// thread takes it, so a steady stream of requests allocates none.
///
/// ```
/// use tower_fortify::failover::Tried;
///
/// let tried = Tried::new();
/// let copy = tried.clone(); // what a retry's replay does
/// assert_eq!(copy.len(), 0);
/// assert!(tried.is_empty());
/// ```
#[derive(Clone)]
pub struct Tried {
    /// `None` only while being dropped.
    slots: Option<Arc<Slots>>,
}

type Slots = [AtomicU64; TRIED_CAPACITY];

/// What a set being dropped reads as (never, in practice).
static EMPTY: Slots = [const { AtomicU64::new(0) }; TRIED_CAPACITY];

/// Sets kept per thread for reuse.
const SPARES: usize = 16;

thread_local! {
    static SPARE: RefCell<Vec<Arc<Slots>>> = const { RefCell::new(Vec::new()) };
}

impl Default for Tried {
    fn default() -> Self {
        Self::new()
    }
}

impl Tried {
    /// An empty set: a cleared one from this thread's cache, or a new allocation.
    #[inline]
    pub fn new() -> Self {
        let spare = SPARE
            .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
            .ok()
            .flatten();
        Self {
            slots: Some(spare.unwrap_or_else(|| Arc::new(Default::default()))),
        }
    }

    #[inline]
    fn slots(&self) -> &Slots {
        self.slots.as_deref().unwrap_or(&EMPTY)
    }

    /// How many backends were recorded.
    pub fn len(&self) -> usize {
        self.slots()
            .iter()
            .take_while(|s| s.load(Ordering::Acquire) != 0)
            .count()
    }

    /// Whether no backend was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.slots()[0].load(Ordering::Acquire) == 0
    }

    /// Whether the backend with this internal serial was recorded.
    pub(crate) fn contains(&self, serial: u64) -> bool {
        let key = serial + 1;
        for s in self.slots().iter() {
            match s.load(Ordering::Acquire) {
                0 => return false,
                v if v == key => return true,
                _ => {}
            }
        }
        false
    }

    /// Records a backend (no-op if present or full).
    pub(crate) fn insert(&self, serial: u64) {
        let key = serial + 1;
        for s in self.slots().iter() {
            match s.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(v) if v == key => return,
                Err(_) => {}
            }
        }
    }
}

impl Drop for Tried {
    /// The last copy clears the set and keeps it for the thread's next request.
    #[inline]
    fn drop(&mut self) {
        let Some(mut slots) = self.slots.take() else {
            return;
        };
        let Some(words) = Arc::get_mut(&mut slots) else {
            return;
        };
        for w in words.iter_mut() {
            *w.get_mut() = 0;
        }
        let _ = SPARE.try_with(move |s| {
            if let Ok(mut s) = s.try_borrow_mut()
                && s.len() < SPARES
            {
                if s.capacity() == 0 {
                    s.reserve_exact(SPARES);
                }
                s.push(slots);
            }
        });
    }
}

impl fmt::Debug for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tried").field("len", &self.len()).finish()
    }
}

/// Finds the [`Tried`] set a request carries, if any.
///
/// The router's builder takes one ([`FailoverBuilder::tried`]); the default,
/// [`NoTried`], finds none and routing ignores earlier attempts. Use [`tried_fn`] for
/// your own request types, or `HttpTried` (feature `http`) for `http::Request`s
/// with a `Tried` in their extensions.
///
/// [`FailoverBuilder::tried`]: super::FailoverBuilder::tried
pub trait TriedAccess<Req> {
    /// The set carried by `req`.
    fn tried<'a>(&self, req: &'a Req) -> Option<&'a Tried>;
}

/// Requests carry no [`Tried`] set: routing ignores earlier attempts.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTried;

impl<Req> TriedAccess<Req> for NoTried {
    #[inline]
    fn tried<'a>(&self, _: &'a Req) -> Option<&'a Tried> {
        None
    }
}

/// A [`TriedAccess`] made from a closure; see [`tried_fn`].
#[derive(Clone, Copy)]
pub struct TriedFn<F> {
    f: F,
}

impl<F> fmt::Debug for TriedFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriedFn").finish_non_exhaustive()
    }
}

/// Reads the [`Tried`] set from a request with a closure `Fn(&Req) -> Option<&Tried>`.
///
/// ```
/// use tower_fortify::failover::{tried_fn, Tried, TriedAccess};
///
/// #[derive(Clone)]
/// struct Req { body: String, tried: Tried }
/// let access = tried_fn(|r: &Req| Some(&r.tried));
/// let req = Req { body: "hi".into(), tried: Tried::new() };
/// assert!(access.tried(&req).is_some());
/// ```
pub fn tried_fn<Req, F>(f: F) -> TriedFn<F>
where
    F: for<'a> Fn(&'a Req) -> Option<&'a Tried>,
{
    TriedFn { f }
}

impl<F, Req> TriedAccess<Req> for TriedFn<F>
where
    F: for<'a> Fn(&'a Req) -> Option<&'a Tried>,
{
    #[inline]
    fn tried<'a>(&self, req: &'a Req) -> Option<&'a Tried> {
        (self.f)(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_up_to_capacity_and_is_shared_by_clones() {
        let t = Tried::new();
        let c = t.clone();
        for s in 0..20 {
            t.insert(s);
            t.insert(s);
        }
        assert_eq!(c.len(), TRIED_CAPACITY);
        assert!(c.contains(0) && c.contains(7));
        assert!(!c.contains(8));
    }

    /// A set is reused only once its last copy is gone, and comes back empty.
    #[test]
    fn a_recycled_set_is_empty_and_not_shared_with_a_live_copy() {
        let a = Tried::new();
        a.insert(3);
        let keep = a.clone();
        drop(a); // `keep` still holds it: not recycled
        let b = Tried::new();
        assert!(b.is_empty(), "a new set is empty");
        b.insert(5);
        assert!(keep.contains(3) && !keep.contains(5), "not the same set");
        let ptr = Arc::as_ptr(keep.slots.as_ref().unwrap());
        drop(keep); // last copy: cleared and cached
        let c = Tried::new();
        assert_eq!(Arc::as_ptr(c.slots.as_ref().unwrap()), ptr, "reused");
        assert!(c.is_empty() && !c.contains(3), "cleared");
    }
}
