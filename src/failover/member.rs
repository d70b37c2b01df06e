//! The backends as router clones share them, and the service instances a clone holds.
//!
//! A router clone used to copy every backend service (and a list to hold them), so the
//! retry layer's clone per request cost O(backends) work and, with boxed backends,
//! O(backends) allocations. Now the backend list is one `Arc<[Member]>` that every
//! up-to-date clone shares, and a clone holds service instances only for the backends
//! it polled. An instance a clone no longer needs (the clone is dropped, or its list
//! is replaced) goes back to its backend's spare slot, where the next clone that picks
//! that backend takes it; only when the slot is empty is the backend's service cloned
//! (and boxed). Sequential requests through the retry layer therefore allocate
//! nothing once every backend has a spare instance.
//!
//! An instance that is ready and was not called may hold capacity (a permit of a
//! `ConcurrencyLimit` or a `Buffer`): it is dropped, never parked in the spare slot.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_utils::atomic::AtomicCell;

use super::pool::Node;

/// One backend of a membership epoch, shared by every clone that saw that epoch.
pub(crate) struct Member<S> {
    pub(crate) node: Arc<Node>,
    /// The service the backend was added with; cloned when no spare instance is left
    /// (behind a lock so that a router needs only `S: Send`, taken only on that path).
    proto: Mutex<S>,
    spare: Spare<S>,
    /// Smooth weighted round robin's running weight (shared by the clones).
    pub(crate) current: AtomicI64,
}

impl<S> Member<S> {
    pub(crate) fn new(node: Arc<Node>, proto: S) -> Self {
        Self {
            node,
            proto: Mutex::new(proto),
            spare: Spare::default(),
            current: AtomicI64::new(0),
        }
    }

    /// An instance of this backend's service: the spare one, or a new clone.
    #[inline]
    fn instance(&self) -> Box<S>
    where
        S: Clone,
    {
        match self.spare.take() {
            Some(s) => s,
            None => self.fresh(),
        }
    }

    #[cold]
    #[inline(never)]
    fn fresh(&self) -> Box<S>
    where
        S: Clone,
    {
        let proto = self.proto.lock().unwrap_or_else(PoisonError::into_inner);
        Box::new(proto.clone())
    }
}

/// At most one parked service instance, taken and given back with one atomic swap
/// (an `Option<Box<S>>` is one word, which `AtomicCell` swaps without a lock).
struct Spare<S> {
    slot: AtomicCell<Option<Box<S>>>,
}

impl<S> Default for Spare<S> {
    fn default() -> Self {
        Self {
            slot: AtomicCell::new(None),
        }
    }
}

impl<S> Spare<S> {
    #[inline]
    fn take(&self) -> Option<Box<S>> {
        self.slot.take()
    }

    /// Parks `s`; an instance parked meanwhile by another clone is dropped.
    #[inline]
    fn put(&self, s: Box<S>) {
        drop(self.slot.swap(Some(s)));
    }
}

/// A service instance a clone holds for member `at` of its list.
pub(crate) struct Held<S> {
    pub(crate) at: usize,
    pub(crate) service: Box<S>,
    /// Its last `poll_ready` was `Ready` and it was not called since.
    pub(crate) ready: bool,
}

/// The instances one clone holds: two inline (one request needs one, or two when the
/// first choice is not ready), more in a list only when a scan polls further backends.
pub(crate) struct Instances<S> {
    inline: [Option<Held<S>>; 2],
    more: Vec<Held<S>>,
}

impl<S> Default for Instances<S> {
    fn default() -> Self {
        Self {
            inline: [None, None],
            more: Vec::new(),
        }
    }
}

impl<S> Instances<S> {
    #[inline]
    fn position(&self, at: usize) -> Option<(bool, usize)> {
        for (i, h) in self.inline.iter().enumerate() {
            if h.as_ref().is_some_and(|h| h.at == at) {
                return Some((true, i));
            }
        }
        self.more
            .iter()
            .position(|h| h.at == at)
            .map(|i| (false, i))
    }

    /// The instance for member `at` of `members`, taken from its spare slot or cloned
    /// if this clone holds none yet.
    #[inline]
    pub(crate) fn get(&mut self, members: &[Member<S>], at: usize) -> &mut Held<S>
    where
        S: Clone,
    {
        let (inline, i) = match self.position(at) {
            Some(found) => found,
            None => self.insert(Held {
                at,
                service: members[at].instance(),
                ready: false,
            }),
        };
        if inline {
            self.inline[i].as_mut().expect("found above")
        } else {
            &mut self.more[i]
        }
    }

    fn insert(&mut self, held: Held<S>) -> (bool, usize) {
        if let Some(i) = self.inline.iter().position(Option::is_none) {
            self.inline[i] = Some(held);
            (true, i)
        } else {
            self.more.push(held);
            (false, self.more.len() - 1)
        }
    }

    /// Gives every instance back to its member's spare slot (a ready one is dropped).
    #[inline]
    pub(crate) fn give_back(&mut self, members: &[Member<S>]) {
        let park = |h: Held<S>| {
            if !h.ready
                && let Some(m) = members.get(h.at)
            {
                m.spare.put(h.service);
            }
        };
        for slot in &mut self.inline {
            if let Some(h) = slot.take() {
                park(h);
            }
        }
        if !self.more.is_empty() {
            self.more.drain(..).for_each(park);
        }
    }

    /// Gives every instance back to its member's spare slot (a ready one is dropped),
    /// or, with `keep`, moves it to the index `keep` gives (`None`: give it back).
    pub(crate) fn release(&mut self, members: &[Member<S>], keep: impl Fn(usize) -> Option<usize>) {
        let mut kept = Vec::new();
        let all = self
            .inline
            .iter_mut()
            .filter_map(Option::take)
            .chain(self.more.drain(..));
        for mut h in all {
            if let Some(to) = keep(h.at) {
                h.at = to;
                kept.push(h);
            } else if !h.ready
                && let Some(m) = members.get(h.at)
            {
                m.spare.put(h.service);
            }
        }
        for h in kept {
            self.insert(h);
        }
    }
}

/// A membership epoch and its members.
type Epoch<S> = (u64, Arc<[Member<S>]>);

/// The members of the current membership epoch, cached so that clones share them.
pub(crate) struct MemberCache<S> {
    cached: Mutex<Option<Epoch<S>>>,
}

impl<S> Default for MemberCache<S> {
    fn default() -> Self {
        Self {
            cached: Mutex::new(None),
        }
    }
}

impl<S> MemberCache<S> {
    /// The members for `epoch`, built from `services` (sorted by tier, then by when
    /// they were added) unless already cached for it.
    pub(crate) fn get(&self, epoch: u64, services: &[(Arc<Node>, S)]) -> Arc<[Member<S>]>
    where
        S: Clone,
    {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((e, members)) = &*cached
            && *e == epoch
        {
            return members.clone();
        }
        let mut list: Vec<Member<S>> = services
            .iter()
            .map(|(node, s)| Member::new(node.clone(), s.clone()))
            .collect();
        list.sort_by_key(|m| (m.node.tier(), m.node.serial));
        let members: Arc<[Member<S>]> = list.into();
        *cached = Some((epoch, members.clone()));
        members
    }
}
