//! The built-in scenarios: the outages every stack should survive.

use std::time::Duration;

use super::backend::{BackendSpec, Phase};
use super::load::Load;
use super::scenario::Scenario;
use crate::chaos::Latency;

const BUILTIN: [&str; 9] = [
    "zone-outage",
    "backend-outage",
    "brownout",
    "latency-spike",
    "flapping",
    "overload",
    "total-outage",
    "tail-latency",
    "tail-everywhere",
];

impl Scenario {
    /// The names of the built-in scenarios, the default first.
    pub fn builtin_names() -> &'static [&'static str] {
        &BUILTIN
    }

    /// Every built-in scenario, the default first.
    pub fn builtins() -> Vec<Scenario> {
        BUILTIN.iter().filter_map(|n| Self::builtin(n)).collect()
    }

    /// The built-in scenario called `name`, if there is one; see
    /// [`Scenario::builtin_names`]. Each runs three minutes at 1,000 requests per
    /// second unless said otherwise, against backends with a 20 ms median latency:
    ///
    /// * `zone-outage` (the default) — two primary backends in zone `a` (tier 0) go
    ///   down together from 0:60 to 2:00; two backends in zone `b` (tier 1, slower)
    ///   can take the load.
    /// * `backend-outage` — one of three equal backends is down from 0:60 to 2:00.
    /// * `brownout` — one of three backends fails 30 % of its calls from 0:60 to 2:00.
    /// * `latency-spike` — one of three backends is 20 times slower from 0:60 to 2:00.
    /// * `flapping` — one of three backends is down 5 s, up 5 s, from 0:30 to 2:30.
    /// * `overload` — the load steps from 1,000 to 2,500 requests per second from
    ///   0:60 to 2:00, beyond what the three backends can serve at once.
    /// * `total-outage` — every backend is down from 0:60 to 2:00.
    /// * `tail-latency` — one minute, three steady backends (20 ms median, 50 ms
    ///   p99); one answers 2 % of its calls 50 times slower, for the whole run: nothing fails, the tail is the fault (the
    ///   hedging scenario; compare p99.9 and extra load).
    pub fn builtin(name: &str) -> Option<Scenario> {
        let s = Duration::from_secs;
        let lat = Latency::log_normal(Duration::from_millis(20), Duration::from_millis(100))
            .expect("valid");
        let trio = |name: &str, describe: &str, first: BackendSpec| {
            Scenario::new(name)
                .describe(describe)
                .duration(s(180))
                .load(Load::constant(1000.0))
                .backend(first)
                .backend(BackendSpec::new("b").latency(lat).capacity(200))
                .backend(BackendSpec::new("c").latency(lat).capacity(200))
        };
        let a = BackendSpec::new("a").latency(lat).capacity(200);
        let scenario = match name {
            "zone-outage" => Scenario::new("zone-outage")
                .describe("primary zone (2 backends, tier 0) down from 1:00 to 2:00; zone b (tier 1) takes over")
                .duration(s(180))
                .load(Load::constant(1000.0))
                .backend(
                    BackendSpec::new("primary-a1").zone("a").latency(lat).capacity(200)
                        .phase(s(60), Phase::Down).phase(s(120), Phase::Healthy),
                )
                .backend(
                    BackendSpec::new("primary-a2").zone("a").latency(lat).capacity(200)
                        .phase(s(60), Phase::Down).phase(s(120), Phase::Healthy),
                )
                .backend(
                    BackendSpec::new("secondary-b1").tier(1).zone("b").capacity(200).latency(
                        Latency::log_normal(Duration::from_millis(40), Duration::from_millis(150)).expect("valid"),
                    ),
                )
                .backend(
                    BackendSpec::new("secondary-b2").tier(1).zone("b").capacity(200).latency(
                        Latency::log_normal(Duration::from_millis(40), Duration::from_millis(150)).expect("valid"),
                    ),
                ),
            "backend-outage" => trio(
                name,
                "one of three backends down from 1:00 to 2:00",
                a.phase(s(60), Phase::Down).phase(s(120), Phase::Healthy),
            ),
            "brownout" => trio(
                name,
                "one of three backends fails 30% of calls from 1:00 to 2:00",
                a.phase(s(60), Phase::Brownout { error_rate: 0.3 }).phase(s(120), Phase::Healthy),
            ),
            "latency-spike" => trio(
                name,
                "one of three backends 20x slower from 1:00 to 2:00",
                a.phase(s(60), Phase::Slow { factor: 20.0 }).phase(s(120), Phase::Healthy),
            ),
            "flapping" => trio(
                name,
                "one of three backends flaps (5 s down, 5 s up) from 0:30 to 2:30",
                a.phase(s(30), Phase::Flapping { down: s(5), up: s(5) }).phase(s(150), Phase::Healthy),
            ),
            "overload" => Scenario::new(name)
                .describe("load steps from 1,000 to 2,500 req/s from 1:00 to 2:00, beyond capacity")
                .duration(s(180))
                .load(Load::constant(1000.0).step(s(60), 2500.0).step(s(120), 1000.0))
                .backend(BackendSpec::new("a").latency(lat).capacity(15).queue(100))
                .backend(BackendSpec::new("b").latency(lat).capacity(15).queue(100))
                .backend(BackendSpec::new("c").latency(lat).capacity(15).queue(100)),
            "total-outage" => Scenario::new(name)
                .describe("every backend down from 1:00 to 2:00")
                .duration(s(180))
                .load(Load::constant(1000.0))
                .backend(a.phase(s(60), Phase::Down).phase(s(120), Phase::Healthy))
                .backend(BackendSpec::new("b").latency(lat).capacity(200).phase(s(60), Phase::Down).phase(s(120), Phase::Healthy))
                .backend(BackendSpec::new("c").latency(lat).capacity(200).phase(s(60), Phase::Down).phase(s(120), Phase::Healthy)),
            "tail-latency" | "tail-everywhere" => {
                // Steady backends (p99 2.5x the median), so that the tail is the fault.
                let steady = Latency::log_normal(Duration::from_millis(20), Duration::from_millis(50))
                    .expect("valid");
                let tail = Phase::Tail { share: 0.02, factor: 50.0 };
                let everywhere = name == "tail-everywhere";
                let b = |n: &str, slow: bool| {
                    let spec = BackendSpec::new(n).latency(steady).capacity(200);
                    if slow { spec.phase(s(0), tail) } else { spec }
                };
                Scenario::new(name)
                    .describe(if everywhere {
                        "every backend answers 2% of calls 50x slower, all along"
                    } else {
                        "one of three backends answers 2% of calls 50x slower, all along"
                    })
                    .duration(s(60))
                    .load(Load::constant(1000.0))
                    .backend(b("a", true))
                    .backend(b("b", everywhere))
                    .backend(b("c", everywhere))
            }
            _ => return None,
        };
        Some(scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid() {
        for s in Scenario::builtins() {
            s.validate().unwrap();
        }
        assert_eq!(Scenario::builtins().len(), Scenario::builtin_names().len());
    }
}
