//! Selection: a tier by its share of traffic, then a backend within it (two random
//! choices by load, or weighted round robin).

use std::sync::atomic::Ordering;

use super::config::Selection;
use super::route::MILLION;
use super::service::Failover;

impl<S, C, T> Failover<S, C, T> {
    #[inline]
    pub(super) fn next_rand(&mut self) -> u64 {
        // xorshift64*: per clone, so routing never writes a shared line.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The tier this call goes to (an index into `route.tiers`).
    #[inline]
    pub(super) fn pick_tier(&mut self) -> usize {
        if self.route.loaded > 1 {
            let r = (self.next_rand() % MILLION as u64) as u32;
            if let Some(k) = self
                .route
                .tiers
                .iter()
                .position(|t| r < t.cum && !t.eligible.is_empty())
            {
                return k;
            }
        }
        self.route
            .tiers
            .iter()
            .position(|t| t.cum > 0 && !t.eligible.is_empty())
            .unwrap_or(0)
    }

    /// The first and second choice in tier `k`.
    #[inline]
    pub(super) fn pick_in_tier(&mut self, k: usize) -> (Option<usize>, Option<usize>) {
        let n = self.route.tiers[k].eligible.len();
        match n {
            0 => (None, None),
            1 => (Some(self.route.tiers[k].eligible[0] as usize), None),
            _ => match self.pool().cfg.selection {
                selection @ (Selection::PowerOfTwoChoices | Selection::PeakEwma { .. }) => {
                    let r = self.next_rand();
                    let a = (r % n as u64) as usize;
                    let mut b = ((r >> 32) % (n as u64 - 1)) as usize;
                    if b >= a {
                        b += 1;
                    }
                    let e = &self.route.tiers[k].eligible;
                    let (a, b) = (e[a] as usize, e[b] as usize);
                    let (na, nb) = (&self.members[a].node, &self.members[b].node);
                    let b_wins = match selection {
                        Selection::PeakEwma { decay, .. } => {
                            let now = self.core.pool.now();
                            let d = super::pool::nanos_f64(decay);
                            nb.ewma_cost(now, d) < na.ewma_cost(now, d)
                        }
                        _ => nb.cost() < na.cost(),
                    };
                    if b_wins {
                        na.passed_over();
                        (Some(b), Some(a))
                    } else {
                        nb.passed_over();
                        (Some(a), Some(b))
                    }
                }
                Selection::WeightedRoundRobin => {
                    let tier = &self.route.tiers[k];
                    let mut total = 0i64;
                    let mut best = tier.eligible[0] as usize;
                    // The running weights are shared by the clones: a race between
                    // two of them skews one pick, never the long-run shares.
                    let mut best_current = i64::MIN;
                    for &j in &tier.eligible {
                        let member = &self.members[j as usize];
                        let w = member.node.weight() as i64;
                        let current = member.current.fetch_add(w, Ordering::Relaxed) + w;
                        total += w;
                        if current > best_current {
                            best = j as usize;
                            best_current = current;
                        }
                    }
                    self.members[best]
                        .current
                        .fetch_sub(total, Ordering::Relaxed);
                    (Some(best), None)
                }
            },
        }
    }
}
