//! Readiness: checking a readied backend again after a change, and finding another
//! ready one when it is not.

use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use tower_service::Service;

use super::route::{Choice, Polled};
use super::service::Failover;

impl<S: Clone, C, T> Failover<S, C, T> {
    /// Whether health or membership changed since the routing table was built: one
    /// atomic load, so that an ejection takes effect on the next call even for a
    /// backend readied before it.
    #[inline]
    pub(super) fn changed(&self) -> bool {
        self.pool().version.load(Ordering::Acquire) != self.route.version
    }

    /// Brings the table up to date and says whether the readied choice still stands
    /// (the backend is still eligible); drops it if not. Returns the readied
    /// backend's new index.
    #[cold]
    pub(super) fn revalidate(&mut self) -> Option<usize> {
        let Some(Choice::Backend(j)) = self.ready.take() else {
            self.refresh();
            return None;
        };
        let serial = self.members[j].node.serial;
        self.refresh();
        // A membership change may have moved it, or removed it with its service.
        let j = self.members.iter().position(|m| m.node.serial == serial)?;
        let eligible = !self.route.reject
            && self
                .route
                .tiers
                .iter()
                .any(|t| t.eligible.contains(&(j as u32)));
        if eligible {
            self.ready = Some(Choice::Backend(j));
        }
        Some(j)
    }

    /// `poll_ready` found a readied choice made before a change: whether it stands.
    #[cold]
    pub(super) fn still_ready(&mut self) -> bool {
        self.revalidate();
        self.ready.is_some()
    }
}

impl<S, C, T> Failover<S, C, T>
where
    S: Clone,
{
    /// `call` was given a backend readied before a change (an ejection, a hold-off,
    /// a removal): sends to it if it is still eligible, or else to another eligible
    /// backend that is ready at once (polled with a no-op waker). With none ready, a
    /// backend still a member takes the call it was readied for (a ready service must
    /// accept it); a removed one cannot, and the call is rejected.
    #[cold]
    pub(super) fn reroute<Req>(&mut self, j: usize) -> Option<usize>
    where
        S: Service<Req>,
    {
        self.ready = Some(Choice::Backend(j));
        let kept = self.revalidate();
        if let Some(Choice::Backend(j)) = self.ready.take() {
            return Some(j);
        }
        if !self.route.reject && !self.members.is_empty() {
            let mut cx = Context::from_waker(Waker::noop());
            let k = self.pick_tier();
            if let (Some(alt), _) = self.scan::<Req>(k, [kept, None], &mut cx, None, true) {
                return Some(alt);
            }
        }
        kept.filter(|&j| self.members[j].node.is_member())
    }
}

impl<S: Clone, C, T> Failover<S, C, T> {
    #[inline]
    pub(super) fn poll_backend<Req>(&mut self, j: usize, cx: &mut Context<'_>) -> Polled
    where
        S: Service<Req>,
    {
        let held = self.held.get(&self.members, j);
        let polled = held.service.poll_ready(cx);
        held.ready = matches!(polled, Poll::Ready(Ok(())));
        match polled {
            Poll::Ready(Ok(())) => Polled::Ready,
            Poll::Pending => Polled::Pending,
            Poll::Ready(Err(_)) => {
                let node = self.members[j].node.clone();
                self.core.pool.record_not_ready_error(&node);
                Polled::Failed
            }
        }
    }

    /// Polls every eligible backend of tiers that take traffic (tier `first` first),
    /// except `skip`, until one is ready. Returns it, and whether any was pending.
    pub(super) fn scan<Req>(
        &mut self,
        first: usize,
        skip: [Option<usize>; 2],
        cx: &mut Context<'_>,
        avoid: Option<&super::Tried>,
        all_tiers: bool,
    ) -> (Option<usize>, bool)
    where
        S: Service<Req>,
    {
        let mut pending = false;
        let tiers = self.route.tiers.len();
        for step in 0..tiers {
            let k = (first + step) % tiers;
            let prev = if k == 0 {
                0
            } else {
                self.route.tiers[k - 1].cum
            };
            if !all_tiers && self.route.tiers[k].cum <= prev {
                continue;
            }
            let n = self.route.tiers[k].eligible.len();
            if n == 0 {
                continue;
            }
            let offset = (self.next_rand() % n as u64) as usize;
            for m in 0..n {
                let j = self.route.tiers[k].eligible[(offset + m) % n] as usize;
                if skip.contains(&Some(j))
                    || avoid.is_some_and(|t| t.contains(self.members[j].node.serial))
                {
                    continue;
                }
                match self.poll_backend::<Req>(j, cx) {
                    Polled::Ready => return (Some(j), pending),
                    Polled::Pending => pending = true,
                    Polled::Failed => {}
                }
            }
        }
        (None, pending)
    }
}
