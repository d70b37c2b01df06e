#![cfg(feature = "drill")]
use std::time::Duration;
use tower_fortify::BoxError;
use tower_fortify::classify::{Outcome, classify_fn};
use tower_fortify::drill::*;
#[allow(unused_imports)]
use tower_fortify::failover::Backend;
use tower_fortify::stack::Stack;

fn run(name: &str, scale: (f64, f64), variant: u32, seed: u64) -> Report {
    let drill = Drill::new(Scenario::builtin(name).unwrap().scaled(scale.0, scale.1))
        .seed(seed)
        .label(format!("v{variant}"));
    drill
        .run(|env| {
            let mut b = Stack::builder()
                .backends(
                    env.backends()
                        .iter()
                        .map(|b| Backend::new(b.name(), b.clone()).tier(b.tier())),
                )
                .rng(env.rng());
            let logs: std::collections::HashMap<String, _> = env
                .backends()
                .iter()
                .map(|b| b.name().to_string())
                .chain(["router".to_string()])
                .map(|s| (s.clone(), env.listener_for(s)))
                .collect();
            b = b.listeners(move |s| logs.get(s).cloned());
            if variant == 1 {
                b = b.bulkhead(|b| b.max_concurrent(200));
            }
            if variant == 3 {
                b = b.retry(|r| r.no_budget().max_attempts(1));
            }
            let c = classify_fn(|r: Result<&SimResponse, &BoxError>| match r {
                Ok(_) => Outcome::Success,
                Err(e) => match e.downcast_ref::<SimError>() {
                    Some(s) if s.kind() == SimErrorKind::Overloaded => {
                        Outcome::Overloaded(Default::default())
                    }
                    _ => Outcome::RetryableFailure,
                },
            });
            let _ = c;
            if variant != 9 {
                return tower::util::BoxCloneSyncService::new(
                    b.classifier(SimClassifier).build().unwrap(),
                );
            }
            tower::util::BoxCloneSyncService::new(b.build().unwrap())
        })
        .unwrap()
}

#[test]
fn scratch() {
    let name = std::env::var("SC").unwrap_or("overload".into());
    let variants: Vec<u32> = std::env::var("V")
        .unwrap_or("0".into())
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let seeds: Vec<u64> = std::env::var("SEEDS")
        .unwrap_or("42".into())
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let rate: f64 = std::env::var("RATE")
        .ok()
        .map(|r| r.parse().unwrap())
        .unwrap_or(if name == "overload" { 1.0 } else { 0.5 });
    let mut reports = vec![];
    for v in &variants {
        for s in &seeds {
            reports.push(run(&name, (0.5, rate), *v, *s));
        }
    }
    println!("{}", comparison_table(&reports));
    for r in &reports {
        for f in &r.faults {
            println!("{} {:?}", r.stack, f);
        }
        if let Ok(ev) = std::env::var("EV") {
            let (a, z): (f64, f64) = {
                let v: Vec<f64> = ev.split(',').map(|x| x.parse().unwrap()).collect();
                (v[0], v[1])
            };
            for e in &r.events {
                if e.at_s >= a && e.at_s <= z && !e.event.contains("Retry") {
                    println!("{:.3} {}", e.at_s, e.event);
                }
            }
        }
        if std::env::var("TL").is_ok() {
            for s in &r.timeline {
                println!(
                    "{} t={} sent={} ok={} p99={} att={:?} fail={:?}",
                    r.stack, s.t, s.sent, s.ok, s.p99_ms, s.attempts, s.backend_failures
                );
            }
        }
    }
    let _ = Duration::ZERO;
}
