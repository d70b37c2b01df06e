//! Live reconfiguration: a running stack takes new settings and keeps its state
//! (breaker states and windows, budget balance, permits held, ejections); settings
//! that are invalid or that a running stack cannot take are refused whole.

#![cfg(feature = "config")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::bulkhead::BulkheadFull;
use tower_fortify::config::{FortifyConfig, StackSettings};
use tower_fortify::failover::BackendHealth;
use tower_fortify::observe::{CircuitState, Event, StackEvent};
use tower_fortify::stack::Stack;

const BASE: &str = r#"
[stacks.p.timeouts]
deadline = "2s"
attempt = "500ms"

[stacks.p.bulkhead]
max_concurrent = 4

[stacks.p.breaker]
consecutive_failures = 3
failure_rate = 0.5
open_duration = "10s"

[stacks.p.retry]
max_attempts = 1

[[stacks.p.backends]]
id = "a"
weight = 1

[[stacks.p.backends]]
id = "b"
weight = 1
"#;

fn settings(text: &str) -> StackSettings {
    FortifyConfig::from_toml_str(text)
        .unwrap()
        .stack("p")
        .unwrap()
}

/// `BASE` with `from` replaced by `to` (which must be in it).
fn edited(pairs: &[(&str, &str)]) -> StackSettings {
    let mut text = BASE.to_string();
    for (from, to) in pairs {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    settings(&text)
}

type Svc = tower::util::BoxCloneSyncService<String, String, BoxError>;

/// Backends that fail while `failing` is set.
fn backend(failing: Arc<std::sync::atomic::AtomicBool>) -> Svc {
    tower::util::BoxCloneSyncService::new(service_fn(move |req: String| {
        let failing = failing.clone();
        async move {
            if failing.load(Ordering::Relaxed) {
                Err::<String, BoxError>("down".into())
            } else {
                Ok(req)
            }
        }
    }))
}

fn build(s: &StackSettings) -> (Stack<Svc>, Arc<std::sync::atomic::AtomicBool>) {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = failing.clone();
    let stack = s
        .builder(move |_| backend(f.clone()))
        .unwrap()
        .build()
        .unwrap();
    (stack, failing)
}

#[tokio::test(start_paused = true)]
async fn live_values_change_and_are_reported() {
    let (stack, _) = build(&settings(BASE));
    let new = edited(&[
        ("deadline = \"2s\"", "deadline = \"1s\""),
        ("attempt = \"500ms\"", "attempt = \"250ms\""),
        ("max_concurrent = 4", "max_concurrent = 16"),
        ("failure_rate = 0.5", "failure_rate = 0.25"),
        ("id = \"b\"\nweight = 1", "id = \"b\"\nweight = 3\ntier = 1"),
        (
            "max_attempts = 1",
            "max_attempts = 2\nbackoff = { kind = \"constant\", base = \"20ms\", jitter = \"none\" }",
        ),
    ]);
    let done = stack.reconfigure(&new).unwrap();
    let lines: Vec<String> = done.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "stacks.p.backends[1].tier: 0 -> 1",
            "stacks.p.backends[1].weight: 1 -> 3",
            "stacks.p.breaker.failure_rate: 0.5 -> 0.25",
            "stacks.p.bulkhead.max_concurrent: 4 -> 16",
            "stacks.p.retry.backoff.base: (default) -> \"20ms\"",
            "stacks.p.retry.backoff.jitter: (default) -> \"none\"",
            "stacks.p.retry.backoff.kind: (default) -> \"constant\"",
            "stacks.p.retry.max_attempts: 1 -> 2",
            "stacks.p.timeouts.attempt: \"500ms\" -> \"250ms\"",
            "stacks.p.timeouts.deadline: \"2s\" -> \"1s\"",
        ]
    );
    assert_eq!(stack.deadline(), Duration::from_secs(1));
    assert_eq!(stack.attempt_timeout(), Duration::from_millis(250));
    assert_eq!(stack.bulkhead().limit(), 16);
    assert_eq!(stack.retry().max_attempts(), 2);
    assert_eq!(
        stack
            .retry()
            .backoff()
            .delay(1, Duration::ZERO, &tower_fortify::backoff::Rng::seeded(1)),
        Duration::from_millis(20)
    );
    let b = stack.router().backend("b").unwrap();
    assert_eq!((b.tier, b.weight), (1, 3));
    let effective = stack.effective_config().unwrap();
    assert_eq!(
        effective.config.breaker.as_ref().unwrap().failure_rate,
        Some(0.25)
    );
    assert_eq!(effective.deadline(), Duration::from_secs(1));
    // The same settings again change nothing.
    assert!(stack.reconfigure(&new).unwrap().changes.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_new_tier_takes_effect_on_the_next_call() {
    let (mut stack, _) = build(&settings(BASE));
    // `b` moves to tier 1: every call now goes to `a`.
    stack
        .reconfigure(&edited(&[(
            "id = \"b\"\nweight = 1",
            "id = \"b\"\nweight = 1\ntier = 1",
        )]))
        .unwrap();
    for _ in 0..20 {
        stack.ready().await.unwrap().call("x".into()).await.unwrap();
    }
    assert_eq!(stack.router().backend("b").unwrap().successes, 0);
    assert_eq!(stack.router().backend("a").unwrap().successes, 20);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_stays_open_with_its_window() {
    let (mut stack, failing) = build(&settings(BASE));
    failing.store(true, Ordering::Relaxed);
    for _ in 0..12 {
        let _ = stack.ready().await.unwrap().call("x".into()).await;
    }
    let a = stack.breaker("a").unwrap().clone();
    assert_eq!(a.state(), CircuitState::Open);
    let until = a.open_until().unwrap();
    let figures = a.figures();
    stack
        .reconfigure(&edited(&[
            ("open_duration = \"10s\"", "open_duration = \"1s\""),
            ("consecutive_failures = 3", "consecutive_failures = 50"),
        ]))
        .unwrap();
    assert_eq!(a.state(), CircuitState::Open, "still open");
    assert_eq!(a.open_until(), Some(until), "for the period it opened with");
    assert_eq!(a.figures(), figures, "windows kept");
    // The next trip uses the new open duration.
    tokio::time::advance(Duration::from_secs(10)).await;
    failing.store(false, Ordering::Relaxed);
    for _ in 0..20 {
        let _ = stack.ready().await.unwrap().call("x".into()).await;
    }
    assert_eq!(a.state(), CircuitState::Closed);
    failing.store(true, Ordering::Relaxed);
    for _ in 0..200 {
        let _ = stack.ready().await.unwrap().call("x".into()).await;
        if a.state() == CircuitState::Open {
            break;
        }
    }
    assert_eq!(a.state(), CircuitState::Open, "the rate still trips");
    let open_for = a.open_until().unwrap() - tokio::time::Instant::now();
    assert!(open_for <= Duration::from_secs(1), "{open_for:?}");
}

#[tokio::test(start_paused = true)]
async fn the_budget_keeps_its_balance() {
    let (stack, _) = build(&settings(BASE));
    let budget = stack.budget().unwrap().clone();
    for _ in 0..100 {
        budget.deposit();
    }
    let w = budget.try_withdraw().unwrap();
    w.commit();
    // 20 % of 100 requests + 10 per second over 10 s, one used.
    assert!(
        (budget.remaining() - 119.0).abs() < 1e-6,
        "{}",
        budget.remaining()
    );
    stack
        .reconfigure(&edited(&[(
            "[stacks.p.retry]\nmax_attempts = 1",
            "[stacks.p.retry]\nmax_attempts = 1\nbudget = { percent = 0.5, min_per_sec = 1 }",
        )]))
        .unwrap();
    // The same window under the new rates: 50 % of 100 + 1 per second, one used.
    assert!(
        (budget.remaining() - 59.0).abs() < 1e-6,
        "{}",
        budget.remaining()
    );
}

#[tokio::test(start_paused = true)]
async fn permits_held_survive_a_limit_down_and_up() {
    let (stack, _) = build(&settings(BASE));
    let bulkhead = stack.bulkhead().clone();
    let held: Vec<_> = (0..3).map(|_| bulkhead.try_acquire().unwrap()).collect();
    stack
        .reconfigure(&edited(&[("max_concurrent = 4", "max_concurrent = 2")]))
        .unwrap();
    assert_eq!(bulkhead.limit(), 2);
    assert_eq!(bulkhead.in_flight(), 3, "no permit lost or cut short");
    assert!(bulkhead.try_acquire().is_err(), "over the new limit");
    let mut held = held.into_iter();
    drop(held.next());
    drop(held.next());
    assert_eq!(bulkhead.in_flight(), 1);
    let fourth = bulkhead.try_acquire().expect("one under the new limit");
    assert!(bulkhead.try_acquire().is_err(), "at the new limit");
    stack
        .reconfigure(&edited(&[("max_concurrent = 4", "max_concurrent = 5")]))
        .unwrap();
    let more: Vec<_> = (0..3).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert!(bulkhead.try_acquire().is_err());
    drop(more);
    drop(fourth);
    drop(held);
    assert_eq!(bulkhead.in_flight(), 0);
    let all: Vec<_> = (0..5).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert_eq!(all.len(), 5, "the whole limit is there again");
}

#[tokio::test(start_paused = true)]
async fn ejections_are_kept() {
    let (stack, _) = build(&settings(BASE));
    assert!(stack.router().eject("a"));
    let before = stack.router().backend("a").unwrap();
    stack
        .reconfigure(&edited(&[(
            "id = \"a\"\nweight = 1",
            "id = \"a\"\nweight = 2",
        )]))
        .unwrap();
    let after = stack.router().backend("a").unwrap();
    assert_eq!(after.health, BackendHealth::Disabled);
    assert_eq!(after.ejections, before.ejections);
    assert_eq!(after.weight, 2);
}

#[tokio::test(start_paused = true)]
async fn refused_settings_change_nothing_and_say_why() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let base = settings(BASE);
    let stack = base
        .builder(|_| backend(Arc::default()))
        .unwrap()
        .listeners(move |source| {
            let log = log.clone();
            (source == "stack").then_some(move |e: &Event| {
                if let Event::Stack(e) = e {
                    log.lock().unwrap().push(e.clone());
                }
            })
        })
        .build()
        .unwrap();
    // Settings changed in code are checked as a file's are.
    let mut bad_rate = edited(&[("deadline = \"2s\"", "deadline = \"1s\"")]);
    bad_rate.config.breaker.as_mut().unwrap().failure_rate = Some(1.5);
    for (new, path, message) in [
        (
            edited(&[
                ("deadline = \"2s\"", "deadline = \"1s\""),
                (
                    "max_attempts = 1",
                    "max_attempts = 1\nmax_server_delay = \"5s\"",
                ),
            ]),
            "stacks.p.retry.max_server_delay",
            "cannot change while the stack runs: rebuild the stack for this",
        ),
        (
            bad_rate,
            "stacks.p.breaker.failure_rate",
            "must lie in 0..=1 (got 1.5)",
        ),
        (
            edited(&[(
                "consecutive_failures = 3",
                "consecutive_failures = 3\ncount_window = 10\nminimum_calls = 5",
            )]),
            "stacks.p.breaker.count_window",
            "cannot change while the breaker runs (it was built around it): rebuild the stack",
        ),
        (
            edited(&[("id = \"b\"", "id = \"c\"")]),
            "stacks.p.backends[1].id",
            "the backends (their ids, order and URLs) cannot change while the stack runs: rebuild it, or use the router's handle (add, remove)",
        ),
    ] {
        let err = stack.reconfigure(&new).unwrap_err();
        assert_eq!((err.path(), err.message()), (path, message));
        assert_eq!(stack.deadline(), Duration::from_secs(2), "nothing applied");
        assert_eq!(stack.effective_config().unwrap(), stack_effective(&base));
    }
    stack
        .reconfigure(&edited(&[("deadline = \"2s\"", "deadline = \"3s\"")]))
        .unwrap();
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 5);
    assert!(
        matches!(&events[0], StackEvent::ReconfigureRefused { reason } if reason.starts_with("stacks.p.retry.max_server_delay: "))
    );
    assert_eq!(
        events[4],
        StackEvent::Reconfigured {
            changes: vec!["stacks.p.timeouts.deadline: \"2s\" -> \"3s\"".to_string()]
        }
    );
}

/// The effective configuration of a stack freshly built from `s`.
fn stack_effective(s: &StackSettings) -> StackSettings {
    build(s).0.effective_config().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_bad_file_reloaded_leaves_the_old_values_running() {
    let dir = std::env::temp_dir().join(format!("fortify-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fortify.toml");
    std::fs::write(&path, BASE).unwrap();
    let config = FortifyConfig::from_path(&path).unwrap();
    let (stack, _) = build(&config.stack("p").unwrap());

    // A file that does not parse: the loader refuses it; the stack is untouched.
    std::fs::write(
        &path,
        BASE.replace("max_concurrent = 4", "max_concurrent = \"lots\""),
    )
    .unwrap();
    let err = FortifyConfig::from_path(&path).unwrap_err();
    assert!(
        err.to_string().contains("stacks.p.bulkhead.max_concurrent"),
        "{err}"
    );
    assert_eq!(stack.bulkhead().limit(), 4);

    // A file that parses but asks what a running stack cannot do: refused whole,
    // although its deadline alone could have been applied.
    std::fs::write(
        &path,
        BASE.replace("deadline = \"2s\"", "deadline = \"9s\"")
            .replace(
                "max_attempts = 1",
                "max_attempts = 1\nmax_server_delay = \"5s\"",
            ),
    )
    .unwrap();
    let config = FortifyConfig::from_path(&path).unwrap();
    let err = stack.reconfigure_from(&config).unwrap_err();
    assert_eq!(err.path(), "stacks.p.retry.max_server_delay");
    assert_eq!(stack.deadline(), Duration::from_secs(2));

    // A file without the stack: refused, naming it.
    std::fs::write(&path, BASE.replace("stacks.p", "stacks.q")).unwrap();
    let config = FortifyConfig::from_path(&path).unwrap();
    let err = stack.reconfigure_from(&config).unwrap_err();
    assert_eq!(err.path(), "stacks.p");
    assert!(err.to_string().contains("no stack named `p`"), "{err}");

    // A good file: applied.
    std::fs::write(
        &path,
        BASE.replace("max_concurrent = 4", "max_concurrent = 7"),
    )
    .unwrap();
    let config = FortifyConfig::from_path(&path).unwrap();
    stack.reconfigure_from(&config).unwrap();
    assert_eq!(stack.bulkhead().limit(), 7);
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn reconfigurations_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let base = settings(BASE);
    let stack = metrics::with_local_recorder(&recorder, || {
        base.builder(|_| backend(Arc::default()))
            .unwrap()
            .metrics()
            .build()
            .unwrap()
    });
    metrics::with_local_recorder(&recorder, || {
        stack
            .reconfigure(&edited(&[("deadline = \"2s\"", "deadline = \"1s\"")]))
            .unwrap();
        stack
            .reconfigure(&edited(&[(
                "max_attempts = 1",
                "max_attempts = 1\nmax_server_delay = \"6s\"",
            )]))
            .unwrap_err();
        stack
            .reconfigure(&edited(&[(
                "max_attempts = 1",
                "max_attempts = 1\nmax_server_delay = \"5s\"",
            )]))
            .unwrap_err();
    });
    let text = recorder.handle().render();
    assert!(
        text.contains("fortify_reconfigurations_total{name=\"p\",result=\"applied\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("fortify_reconfigurations_total{name=\"p\",result=\"refused\"} 2"),
        "{text}"
    );
}

/// Tasks on several threads send requests while another reconfigures the bulkhead
/// up and down: every request is answered (served, or refused by the bulkhead),
/// and once they are done no permit is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_loses_no_permit_and_no_request() {
    let base = settings(BASE);
    let stack = base
        .builder(|_| {
            tower::util::BoxCloneSyncService::new(service_fn(|req: String| async move {
                tokio::task::yield_now().await;
                Ok::<_, BoxError>(req)
            }))
        })
        .unwrap()
        .build()
        .unwrap();
    const TASKS: usize = 8;
    const EACH: usize = 400;
    let served = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    // Boxed, so that the tasks' futures are plainly `Send`.
    let svc: Svc = tower::util::BoxCloneSyncService::new(stack.clone());
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut stack = svc.clone();
        let (served, refused) = (served.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                match stack.ready().await.unwrap().call(format!("{t}/{i}")).await {
                    Ok(answer) => {
                        assert_eq!(answer, format!("{t}/{i}"));
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        assert!(e.downcast_ref::<BulkheadFull>().is_some(), "{e}");
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let reloader = {
        let stack = stack.clone();
        tokio::spawn(async move {
            let mut n = 0;
            for round in 0..300 {
                let limit = [1, 16, 2, 8, 3][round % 5];
                let s = edited(&[("max_concurrent = 4", &format!("max_concurrent = {limit}"))]);
                stack.reconfigure(&s).unwrap();
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(reloader.await.unwrap(), 300);
    let (served, refused) = (
        served.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    assert_eq!(served + refused, TASKS * EACH, "every request answered");
    assert!(served > 0);
    assert_eq!(stack.bulkhead().in_flight(), 0, "no permit lost");
    // The last round set 3: exactly 3 permits are to be had.
    let limit = stack.bulkhead().limit();
    let permits: Vec<_> = (0..limit)
        .map(|_| stack.bulkhead().try_acquire().unwrap())
        .collect();
    assert!(stack.bulkhead().try_acquire().is_err());
    assert_eq!(permits.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_stack_with_an_adaptive_bulkhead_takes_other_changes() {
    let text = BASE.replace(
        "max_concurrent = 4",
        "adaptive = { initial = 5, max = 50, vegas = {} }",
    );
    let (stack, _) = build(&settings(&text));
    assert!(stack.bulkhead().is_adaptive());
    let before = stack.effective_config().unwrap();
    assert!(
        before
            .config
            .bulkhead
            .as_ref()
            .unwrap()
            .max_concurrent
            .is_none()
    );
    let new = settings(&text.replace("deadline = \"2s\"", "deadline = \"4s\""));
    let done = stack.reconfigure(&new).unwrap();
    assert_eq!(done.changes.len(), 1, "{:?}", done.changes);
    assert_eq!(stack.deadline(), Duration::from_secs(4));
    let other = settings(&text.replace("max = 50", "max = 60"));
    let err = stack.reconfigure(&other).unwrap_err();
    assert_eq!(err.path(), "stacks.p.bulkhead.adaptive.max");
}
