//! The hedging layer in paused time: who wins, what the budget refuses, what is
//! cancelled, when nothing is sent, and how the percentile delay follows latency.

#![cfg(all(feature = "hedge", feature = "failover"))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::budget::Budget;
use tower_fortify::classify::Outcome;
use tower_fortify::failover::{Backend, Failover, Tried, tried_fn};
use tower_fortify::hedge::HedgeLayer;
use tower_fortify::observe::{Event, HedgeEvent, HedgeSkipReason};
use tower_fortify::retry::replay_fn;
use tower_fortify::rng::Rng;

const MS: Duration = Duration::from_millis(1);

#[derive(Clone, Debug)]
struct Req {
    tried: Tried,
}

fn req() -> Req {
    Req {
        tried: Tried::new(),
    }
}

/// Events a listener saw.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<HedgeEvent>>>);

impl Log {
    fn listener(&self) -> impl Fn(&Event) + Send + Sync + 'static + use<> {
        let log = self.0.clone();
        move |e: &Event| {
            if let Event::Hedge(h) = e {
                log.lock().unwrap().push(h.clone());
            }
        }
    }

    fn sent(&self) -> usize {
        let log = self.0.lock().unwrap();
        log.iter()
            .filter(|e| matches!(e, HedgeEvent::HedgeSent { .. }))
            .count()
    }

    fn events(&self) -> Vec<HedgeEvent> {
        self.0.lock().unwrap().clone()
    }
}

/// A backend named `name` whose calls take `latency(n)` for the `n`th call seen by
/// any backend sharing `counter`; answers with its name. Each call holds a permit of
/// `permits` while it runs, and bumps `finished` when it completes.
#[derive(Clone)]
struct Sim {
    counter: Arc<AtomicU32>,
    finished: Arc<AtomicU32>,
    permits: Arc<Semaphore>,
    first: Arc<Mutex<Option<&'static str>>>,
    latency: Arc<dyn Fn(u32) -> Duration + Send + Sync>,
}

impl Sim {
    fn new(latency: impl Fn(u32) -> Duration + Send + Sync + 'static) -> Self {
        Self {
            counter: Arc::default(),
            finished: Arc::default(),
            permits: Arc::new(Semaphore::new(10)),
            first: Arc::default(),
            latency: Arc::new(latency),
        }
    }

    fn backend<R: Send + 'static>(
        &self,
        name: &'static str,
    ) -> impl Service<R, Response = &'static str, Error = BoxError, Future: Send> + Clone + Send + use<R>
    {
        let sim = self.clone();
        service_fn(move |_: R| {
            let sim = sim.clone();
            async move {
                let n = sim.counter.fetch_add(1, Ordering::SeqCst);
                sim.first.lock().unwrap().get_or_insert(name);
                let _permit = sim.permits.clone().acquire_owned().await.unwrap();
                tokio::time::sleep((sim.latency)(n)).await;
                sim.finished.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(name)
            }
        })
    }

    fn calls(&self) -> u32 {
        self.counter.load(Ordering::SeqCst)
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_goes_to_the_other_backend_and_wins() {
    // The first call, wherever it lands, takes a second; every other call 10 ms.
    let sim = Sim::new(|n| if n == 0 { 1000 * MS } else { 10 * MS });
    let router = Failover::builder()
        .backend(Backend::new("a", sim.backend("a")))
        .backend(Backend::new("b", sim.backend("b")))
        .tried(tried_fn(|r: &Req| Some(&r.tried)))
        .rng(Rng::seeded(7))
        .build()
        .unwrap();
    let log = Log::default();
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .no_budget()
        .listener(log.listener())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(hedge).service(router);

    let start = Instant::now();
    let r = req();
    let tried = r.tried.clone();
    let answer = svc.ready().await.unwrap().call(r).await.unwrap();
    assert_eq!(
        start.elapsed(),
        60 * MS,
        "50 ms delay, then the hedge's 10 ms"
    );
    let first = sim.first.lock().unwrap().unwrap();
    assert_ne!(
        answer, first,
        "the hedge went to the backend the original did not"
    );
    assert_eq!(
        tried.len(),
        2,
        "both backends recorded in the request's Tried set"
    );
    assert_eq!(sim.calls(), 2);
    assert_eq!(
        log.events(),
        vec![
            HedgeEvent::HedgeSent {
                hedge: 1,
                after: 50 * MS
            },
            HedgeEvent::Finished {
                hedges: 1,
                winner: 1,
                success: true
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_refuses_a_hedge() {
    let sim = Sim::new(|_| 200 * MS);
    // A gRPC-style bucket at half its tokens allows nothing more.
    let budget = Budget::token_bucket(4.0, 0.1).unwrap();
    budget.record(Outcome::RetryableFailure);
    budget.record(Outcome::RetryableFailure);
    let log = Log::default();
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .draw_from(budget.clone())
        .listener(log.listener())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(hedge)
        .service(sim.backend::<u32>("a"));
    let start = Instant::now();
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(start.elapsed(), 200 * MS, "the original's own latency");
    assert_eq!(sim.calls(), 1, "no hedge was sent");
    assert_eq!(
        log.events()[0],
        HedgeEvent::HedgeSkipped {
            hedge: 1,
            reason: HedgeSkipReason::Budget
        }
    );

    // Refilled by successes, the same budget pays for a hedge.
    for _ in 0..30 {
        budget.record(Outcome::Success);
    }
    svc.ready().await.unwrap().call(2).await.unwrap();
    assert_eq!(sim.calls(), 3, "the original and its hedge");
}

#[tokio::test(start_paused = true)]
async fn the_loser_is_cancelled_and_its_permit_comes_back() {
    let sim = Sim::new(|n| if n == 0 { 1000 * MS } else { 10 * MS });
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .no_budget()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(hedge)
        .service(sim.backend::<u32>("a"));
    let fut = svc.ready().await.unwrap().call(1);
    let answer = fut.await.unwrap();
    assert_eq!(answer, "a");
    assert_eq!(sim.calls(), 2);
    assert_eq!(
        sim.permits.available_permits(),
        10,
        "the slow original was dropped with its permit as soon as the hedge won"
    );
    tokio::time::advance(2000 * MS).await;
    assert_eq!(
        sim.finished.load(Ordering::SeqCst),
        1,
        "the original never ran to its end"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_cancels_every_copy() {
    let sim = Sim::new(|_| 1000 * MS);
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .max_hedges(2)
        .no_budget()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(hedge)
        .service(sim.backend::<u32>("a"));
    let mut fut = Box::pin(svc.ready().await.unwrap().call(1));
    // Poll through both delays: the original and two hedges in flight.
    tokio::select! {
        _ = &mut fut => panic!("every copy takes a second"),
        _ = tokio::time::sleep(120 * MS) => {}
    }
    assert_eq!(sim.calls(), 3);
    assert_eq!(sim.permits.available_permits(), 7);
    drop(fut);
    assert_eq!(
        sim.permits.available_permits(),
        10,
        "all three permits back"
    );
    tokio::time::advance(2000 * MS).await;
    assert_eq!(sim.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_when_the_original_answers_before_the_delay() {
    let sim = Sim::new(|_| 10 * MS);
    let log = Log::default();
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .no_budget()
        .listener(log.listener())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(hedge)
        .service(sim.backend::<u32>("a"));
    for i in 0..100 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    assert_eq!(sim.calls(), 100, "one call per request");
    assert_eq!(log.sent(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_another_copy_runs_waits_for_it() {
    // The original fails at 55 ms, while the hedge sent at 50 ms is in flight; the
    // hedge answers at 70 ms.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let backend = service_fn(move |_: u32| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                tokio::time::sleep(55 * MS).await;
                Err::<u32, BoxError>("reset".into())
            } else {
                tokio::time::sleep(20 * MS).await;
                Ok(7)
            }
        }
    });
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .no_budget()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(hedge).service(backend);
    let start = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 7);
    assert_eq!(
        start.elapsed(),
        70 * MS,
        "the hedge's answer, not the failure"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_that_cannot_be_copied_are_not_hedged() {
    let sim = Sim::new(|_| 200 * MS);
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .no_budget()
        // Odd ids are not idempotent.
        .replay(replay_fn(|r: &u32| r.is_multiple_of(2).then_some(*r)))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(hedge)
        .service(sim.backend::<u32>("a"));
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(sim.calls(), 1);
    svc.ready().await.unwrap().call(2).await.unwrap();
    assert_eq!(sim.calls(), 3);
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn a_post_is_not_hedged_under_http_replay() {
    let sim = Sim::new(|_| 200 * MS);
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .no_budget()
        .replay(tower_fortify::http::HttpReplay)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(hedge)
        .service(sim.backend::<http::Request<String>>("a"));
    let post = http::Request::post("/pay").body(String::new()).unwrap();
    svc.ready().await.unwrap().call(post).await.unwrap();
    assert_eq!(sim.calls(), 1, "POST is not idempotent");
    let get = http::Request::get("/balance").body(String::new()).unwrap();
    svc.ready().await.unwrap().call(get).await.unwrap();
    assert_eq!(sim.calls(), 3, "GET is hedged");
}

#[tokio::test(start_paused = true)]
async fn the_percentile_delay_follows_the_latency() {
    let latency = Arc::new(AtomicU32::new(10));
    let l = latency.clone();
    let sim = Sim::new(move |_| l.load(Ordering::SeqCst) * MS);
    let hedge = HedgeLayer::builder()
        .percentile(0.9)
        .min_samples(100)
        .decay_every(256)
        .no_budget()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(hedge)
        .service(sim.backend::<u32>("a"));
    assert_eq!(
        svc.current_delay(),
        Duration::from_secs(1),
        "no estimate yet: max_delay"
    );
    for i in 0..300 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    let d = svc.current_delay();
    assert!(d >= 10 * MS && d <= 11 * MS, "p90 of 10 ms calls: {d:?}");
    assert_eq!(sim.calls(), 300, "nothing was slower than the delay");

    latency.store(40, Ordering::SeqCst);
    for i in 0..2000 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    let d = svc.current_delay();
    assert!(d >= 40 * MS && d <= 45 * MS, "p90 of 40 ms calls: {d:?}");
}

#[test]
fn bad_configuration_names_the_field() {
    let field = |b: tower_fortify::hedge::HedgeBuilder| b.build().unwrap_err().field();
    assert_eq!(
        field(HedgeLayer::builder().delay(Duration::ZERO)),
        "hedge.delay"
    );
    assert_eq!(
        field(HedgeLayer::builder().percentile(1.0)),
        "hedge.percentile"
    );
    assert_eq!(
        field(HedgeLayer::builder().percentile(f64::NAN)),
        "hedge.percentile"
    );
    assert_eq!(
        field(HedgeLayer::builder().max_hedges(0)),
        "hedge.max_hedges"
    );
    assert_eq!(
        field(HedgeLayer::builder().max_hedges(9)),
        "hedge.max_hedges"
    );
    assert_eq!(
        field(HedgeLayer::builder().min_delay(2 * MS).max_delay(MS)),
        "hedge.min_delay"
    );
    assert_eq!(
        field(HedgeLayer::builder().max_delay(Duration::ZERO)),
        "hedge.max_delay"
    );
    assert_eq!(
        field(HedgeLayer::builder().min_samples(0)),
        "hedge.min_samples"
    );
    assert_eq!(
        field(HedgeLayer::builder().decay_every(3)),
        "hedge.decay_every"
    );
    assert!(HedgeLayer::builder().name("payments").build().is_ok());
}

#[cfg(feature = "stack")]
#[tokio::test(start_paused = true)]
async fn the_stack_hedges_only_when_asked_and_to_the_other_backend() {
    use tower_fortify::stack::Stack;
    let slow_first = |n| if n == 0 { 1000 * MS } else { 10 * MS };

    let sim = Sim::new(slow_first);
    let mut plain = Stack::builder()
        .backend("a", sim.backend::<u32>("a"))
        .backend("b", sim.backend::<u32>("b"))
        .build()
        .unwrap();
    let start = Instant::now();
    plain.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(start.elapsed(), 1000 * MS, "no hedge by default");
    assert_eq!(sim.calls(), 1);

    let sim = Sim::new(slow_first);
    let log = Log::default();
    let l = log.clone();
    let mut hedged = Stack::builder()
        .backend("a", sim.backend::<u32>("a"))
        .backend("b", sim.backend::<u32>("b"))
        .hedge(|h| h.delay(50 * MS))
        .listeners(move |source| (source == "hedge").then(|| l.listener()))
        .build()
        .unwrap();
    let budget = hedged.budget().unwrap().clone();
    let before = budget.remaining();
    let start = Instant::now();
    let answer = hedged.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(start.elapsed(), 60 * MS);
    assert_ne!(
        answer,
        sim.first.lock().unwrap().unwrap(),
        "won by the other backend"
    );
    assert_eq!(log.sent(), 1);
    assert!(
        budget.remaining() < before,
        "the hedge was paid from the retry layer's budget"
    );
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn a_streamed_body_is_replayed_to_the_hedge() {
    use http_body_util::BodyExt;
    use tower_fortify::http::{HttpReplay, ReplayBody};

    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // Each copy reads the whole body; the first then hangs for a second.
    let backend = service_fn(move |req: http::Request<ReplayBody<String>>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            let ms = if n == 0 { 1000 } else { 10 };
            tokio::time::sleep(ms * MS).await;
            Ok::<_, BoxError>(format!("{n}:{}", String::from_utf8_lossy(&body)))
        }
    });
    let hedge = HedgeLayer::builder()
        .delay(50 * MS)
        .no_budget()
        .replay(HttpReplay)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(hedge).service(backend);
    let req = http::Request::put("/item")
        .body(ReplayBody::new(String::from("payload"), 1024))
        .unwrap();
    let answer = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(answer, "1:payload", "the hedge got the same bytes");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
