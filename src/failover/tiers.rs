//! Membership sync and the tier table: which tiers take traffic, in which shares, and
//! which members of each are eligible (Envoy's priority loads).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::config::PanicMode;
use super::route::{MILLION, TierRoute};
use super::service::Failover;

impl<S, C, T> Failover<S, C, T> {
    /// Brings the backend list up to date with the shared membership. The instances
    /// this clone holds follow their backends to the new list (a readied one stays
    /// readied); those of removed backends are dropped.
    #[cold]
    pub(super) fn sync(&mut self)
    where
        S: Clone,
    {
        let services = self.core.lock_services();
        self.epoch = self.core.pool.epoch.load(Ordering::Acquire);
        let members = self.core.members.get(self.epoch, &services);
        drop(services);
        let old = std::mem::replace(&mut self.members, members);
        let new = &self.members;
        self.held.release(&old, |at| {
            let serial = old[at].node.serial;
            new.iter().position(|m| m.node.serial == serial)
        });
        self.route = Arc::default();
    }

    #[inline]
    pub(super) fn refresh(&mut self)
    where
        S: Clone,
    {
        if self.pool().epoch.load(Ordering::Acquire) != self.epoch {
            self.sync();
        }
        let version = self.pool().version.load(Ordering::Acquire);
        let stale = !self.route.valid
            || version != self.route.version
            || (self.route.next_expiry != u64::MAX && self.pool().now() >= self.route.next_expiry);
        if stale {
            self.recompute(version);
        }
    }

    /// Rebuilds the routing table: Envoy's priority loads with the overprovisioning
    /// factor, normalised when the tiers together are under 100 %, and panic routing.
    #[cold]
    pub(super) fn recompute(&mut self, version: u64) {
        let pool = self.core.pool.clone();
        let cfg = &pool.cfg;
        let now = pool.now();
        let route = Arc::make_mut(&mut self.route);
        route.valid = true;
        route.version = version;
        route.next_expiry = u64::MAX;
        route.reject = false;
        route.loaded = 0;
        // Group the members (sorted by tier) into tiers, reusing the vectors.
        let mut count = 0;
        let mut i = 0;
        while i < self.members.len() {
            let tier = self.members[i].node.tier();
            let mut end = i;
            while end < self.members.len() && self.members[end].node.tier() == tier {
                end += 1;
            }
            if route.tiers.len() == count {
                route.tiers.push(TierRoute::default());
            }
            let t = &mut route.tiers[count];
            t.start = i;
            t.end = end;
            t.cum = 0;
            t.eligible.clear();
            count += 1;
            i = end;
        }
        route.tiers.truncate(count);
        // Health per tier, in percent after overprovisioning.
        let mut health = [0f64; 16];
        let mut health_vec = Vec::new();
        let healths: &mut [f64] = if count <= 16 {
            &mut health[..count]
        } else {
            health_vec.resize(count, 0.0);
            &mut health_vec
        };
        for (k, t) in route.tiers.iter_mut().enumerate() {
            let (mut total, mut healthy) = (0u64, 0u64);
            for (j, member) in self.members[t.start..t.end].iter().enumerate() {
                let node = &member.node;
                total += node.weight() as u64;
                for until in [
                    node.cold.ejected_until.load(Ordering::Acquire),
                    node.cold.held_until.load(Ordering::Acquire),
                ] {
                    if until > now {
                        route.next_expiry = route.next_expiry.min(until);
                    }
                }
                if node.is_eligible(now) {
                    healthy += node.weight() as u64;
                    t.eligible.push((t.start + j) as u32);
                }
            }
            healths[k] = if total == 0 {
                0.0
            } else {
                (cfg.overprovisioning * 100.0 * healthy as f64 / total as f64).min(100.0)
            };
        }
        let sum: f64 = healths.iter().sum();
        let total = sum.min(100.0);
        if total <= 0.0 || total < cfg.panic_threshold {
            // Panic.
            if cfg.panic_mode == PanicMode::FailFast {
                route.reject = true;
                return;
            }
            for t in route.tiers.iter_mut() {
                t.eligible.clear();
                for j in t.start..t.end {
                    if self.members[j].node.is_panic_eligible(now) {
                        t.eligible.push(j as u32);
                    }
                }
                if !t.eligible.is_empty() {
                    t.cum = MILLION;
                    route.loaded = 1;
                    break;
                }
            }
            if route.loaded == 0 {
                route.reject = true;
            }
            return;
        }
        // Envoy: each tier takes min(remaining, health); below 100 % in total the
        // loads are scaled up so they add to 100 %.
        let mut remaining = 100.0;
        let mut cum = 0.0;
        for (k, t) in route.tiers.iter_mut().enumerate() {
            let load = if sum < 100.0 {
                healths[k] * 100.0 / sum
            } else {
                let l = healths[k].min(remaining);
                remaining -= l;
                l
            };
            if load > 0.0 && !t.eligible.is_empty() {
                route.loaded += 1;
            }
            cum += load;
            t.cum = ((cum / 100.0) * MILLION as f64).round().min(MILLION as f64) as u32;
        }
        if let Some(last) = route
            .tiers
            .iter_mut()
            .rev()
            .find(|t| !t.eligible.is_empty())
        {
            // Rounding never leaves a gap at the top.
            last.cum = MILLION;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};

    use proptest::prelude::*;

    use super::*;
    use crate::failover::Backend;

    type Echo = tower::util::ServiceFn<fn(u32) -> Ready<Result<u32, Infallible>>>;

    pub(super) fn echo() -> Echo {
        tower::service_fn((|x| ready(Ok(x))) as fn(u32) -> Ready<Result<u32, Infallible>>)
    }

    /// Envoy's priority loads, written plainly: the reference for `recompute`.
    /// Returns each tier's share in percent, or `None` for fail-fast.
    pub(super) fn reference(tiers: &[(u32, u32)], of: f64, panic: f64) -> Vec<f64> {
        let h: Vec<f64> = tiers
            .iter()
            .map(|&(total, healthy)| (of * 100.0 * healthy as f64 / total as f64).min(100.0))
            .collect();
        let sum: f64 = h.iter().sum();
        if sum.min(100.0) <= 0.0 || sum.min(100.0) < panic {
            // Panic: everything to the first tier (all have members).
            let mut loads = vec![0.0; tiers.len()];
            loads[0] = 100.0;
            return loads;
        }
        let mut remaining = 100.0;
        h.iter()
            .map(|&hi| {
                if sum < 100.0 {
                    hi * 100.0 / sum
                } else {
                    let l = hi.min(remaining);
                    remaining -= l;
                    l
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn tier_loads_match_the_reference(
            tiers in proptest::collection::vec((1u32..6, 0u32..6), 1..4),
            of in 1.0f64..3.0,
            panic in 0.0f64..100.0,
        ) {
            let tiers: Vec<(u32, u32)> = tiers.into_iter().map(|(t, h)| (t, h.min(t))).collect();
            let mut builder = Failover::builder()
                .overprovisioning_factor(of)
                .panic_threshold(panic)
                .max_ejection_percent(100.0);
            for (k, &(total, _)) in tiers.iter().enumerate() {
                for i in 0..total {
                    builder = builder.backend(Backend::new(format!("t{k}b{i}"), echo()).tier(k as u32));
                }
            }
            let mut router = builder.build().unwrap();
            // Eject the unhealthy ones (outlier ejection: panic may still use them).
            for (k, &(total, healthy)) in tiers.iter().enumerate() {
                for l in router.members.iter() {
                    let name = &*l.node.id;
                    for i in healthy..total {
                        if name == format!("t{k}b{i}") {
                            l.node.cold.ejected_until.store(u64::MAX, Ordering::Release);
                        }
                    }
                }
            }
            router.core.pool.bump();
            router.refresh();
            let expected = reference(&tiers, of, panic);
            let mut prev = 0u32;
            let mut cum = 0.0;
            for (k, t) in router.route.tiers.iter().enumerate() {
                cum += expected[k];
                let share = t.cum.saturating_sub(prev);
                let want = ((expected[k] / 100.0) * MILLION as f64) as i64;
                let is_last_loaded = router.route.tiers[k + 1..]
                    .iter()
                    .all(|t| t.eligible.is_empty());
                if !t.eligible.is_empty() && !is_last_loaded {
                    prop_assert!((share as i64 - want).abs() <= 2, "tier {k}: {share} vs {want} ({tiers:?})");
                }
                if expected[k] > 0.0 {
                    prop_assert!(!t.eligible.is_empty());
                }
                prev = prev.max(t.cum);
            }
            prop_assert!(!router.route.reject);
            prop_assert!((cum - 100.0).abs() < 1e-6);
        }
    }
}
