//! The main demo: a disaster-recovery drill, three stacks side by side.
//!
//! ```text
//! cargo run --example drill --features drill                         # the default scenario (zone outage)
//! cargo run --example drill --features drill -- --list                # the built-in scenarios
//! cargo run --example drill --features drill -- --scenario brownout   # a built-in scenario by name
//! cargo run --example drill --features drill -- --scenario my.toml    # or a scenario file
//! cargo run --example drill --features drill -- --print brownout      # a built-in scenario as TOML
//! cargo run --example drill --features drill -- --seed 7              # another seed
//! cargo run --example drill --features drill -- --real                # over HTTP on 127.0.0.1, in real time
//! cargo run --example drill --features drill -- --scenario latency-spike --wrong-order
//!                                                      # + the timeout above the retry
//! ```
//!
//! Each stack runs the same scenario with the same seed in paused time (three virtual
//! minutes take well under a second in release), then the demo prints a comparison
//! table and writes `drill-report.json` and `drill-report.svg`.
//!
//! With `--real`, each simulated backend is served by a hyper HTTP server on
//! 127.0.0.1 and the stacks call it through a hyper client, in real time: the scenario
//! is shrunk to 20 s at a fifth of its rate, with a progress bar.
//!
//! To add a stack, write a function `fn(&Drill) -> Report` like the ones below and list
//! it in `STACKS`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder};
use tower_fortify::BoxError;
use tower_fortify::backoff::{Backoff, Jitter};
use tower_fortify::budget::Budget;
use tower_fortify::drill::{
    Drill, DrillEnv, EventLog, Report, Scenario, SimBackend, SimClassifier, SimFuture, SimRequest,
    SimResponse, comparison_table, svg_chart, verdicts,
};
use tower_fortify::failover::Backend;
use tower_fortify::observe::{CircuitBreakerEvent, Event};
use tower_fortify::retry::RetryLayer;
use tower_fortify::stack::Stack;

/// Runs a drill against one stack.
type RunStack = fn(&Drill) -> Report;

/// The stacks compared, in order: a name, what it adds, and how to run it.
const STACKS: &[(&str, &str, RunStack)] = &[
    (
        "no resilience",
        "round robin over every backend",
        no_resilience,
    ),
    (
        "retry only",
        "+ 3 attempts with jittered backoff, no budget",
        retry_only,
    ),
    (
        "recommended",
        "Stack::builder() with its defaults: deadline, bulkhead, budgeted retry, failover, breaker + timeout per backend",
        recommended,
    ),
];

fn no_resilience(drill: &Drill) -> Report {
    run(drill, round_robin)
}

fn retry_only(drill: &Drill) -> Report {
    run(drill, |env| {
        let retry = RetryLayer::builder()
            .max_attempts(3)
            .backoff(Backoff::exponential(Duration::from_millis(10)).jitter(Jitter::Full))
            .no_budget()
            .rng(env.rng())
            .build()
            .expect("valid retry configuration");
        ServiceBuilder::new().layer(retry).service(round_robin(env))
    })
}

/// The recommended stack: the one-call [`Stack`] with its defaults, over the
/// scenario's backends (by tier). The only settings are the simulated protocol's
/// classifier, the drill's seed, and listeners for the chart's breaker bands.
fn recommended(drill: &Drill) -> Report {
    run(drill, |env| {
        let backends = endpoints(env)
            .into_iter()
            .zip(env.backends())
            .map(|(endpoint, sim)| Backend::new(sim.name(), endpoint).tier(sim.tier()));
        let logs: HashMap<String, EventLog> = env
            .backends()
            .iter()
            .map(|b| b.name().to_string())
            .chain(["router".to_string()])
            .map(|source| (source.clone(), env.listener_for(source)))
            .collect();
        Stack::builder()
            .backends(backends)
            .classifier(SimClassifier)
            .rng(env.rng())
            .listeners(move |source| logs.get(source).cloned())
            .build()
            .expect("valid stack configuration")
    })
}

/// Breaker states, for the chart's bands. (The router reports ejections but not
/// their end when it simply expires, so ejections are not drawn as bands.)
fn states(source: &str, event: &Event) -> Option<(String, String)> {
    match event {
        Event::CircuitBreaker(CircuitBreakerEvent::StateChanged { to, .. }) => {
            Some((format!("{source} breaker"), to.as_str().to_string()))
        }
        _ => None,
    }
}

/// `--wrong-order`: budgeted retry over round robin with the 300 ms timeout above the
/// retry layer instead of in front of each backend. It then bounds the whole request
/// instead of each attempt: a slow attempt uses up the
/// request's time, and the retry that would have gone to a healthy backend never
/// happens. Try it with `--scenario latency-spike`.
const WRONG_ORDER: (&str, &str, RunStack) = (
    "wrong order",
    "budgeted retry, the 300 ms timeout outside it",
    wrong_order,
);

fn wrong_order(drill: &Drill) -> Report {
    run(drill, |env| {
        let retry = RetryLayer::builder()
            .max_attempts(3)
            .backoff(
                Backoff::exponential(Duration::from_millis(10))
                    .max_delay(Duration::from_millis(200))
                    .jitter(Jitter::Full),
            )
            .budget(Budget::default_ratio())
            .deadline(Duration::from_secs(1))
            .rng(env.rng())
            .build()
            .expect("valid retry configuration");
        ServiceBuilder::new()
            .layer(TimeoutLayer::new(Duration::from_millis(300)))
            .layer(retry)
            .service(round_robin(env))
    })
}

/// Runs the drill in paused time, or in real time over loopback HTTP with `--real`.
fn run<F, S>(drill: &Drill, build: F) -> Report
where
    F: FnOnce(&DrillEnv) -> S,
    S: Service<SimRequest, Response = SimResponse> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
{
    if !real::ENABLED.load(Ordering::Relaxed) {
        return drill.run(build).expect("valid scenario");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let progress = tokio::spawn(real::progress(drill.scenario().run_time()));
        let report = drill.run_async(build).await.expect("valid scenario");
        progress.abort();
        eprintln!();
        report
    })
}

/// Round robin over every backend: the simulated ones, or their HTTP servers with
/// `--real`. The demo's load balancer until the failover router is available.
#[derive(Clone)]
struct RoundRobin {
    endpoints: Arc<[Endpoint]>,
    next: Arc<AtomicUsize>,
}

#[derive(Clone)]
enum Endpoint {
    Sim(SimBackend),
    Http(Box<real::HttpBackend>),
}

fn round_robin(env: &DrillEnv) -> RoundRobin {
    RoundRobin {
        endpoints: endpoints(env).into(),
        next: Arc::new(AtomicUsize::new(0)),
    }
}

/// One endpoint per backend: the simulated backend, or a client of its HTTP server.
fn endpoints(env: &DrillEnv) -> Vec<Endpoint> {
    if real::ENABLED.load(Ordering::Relaxed) {
        real::serve(env.backends())
            .into_iter()
            .map(|b| Endpoint::Http(Box::new(b)))
            .collect()
    } else {
        env.backends().iter().cloned().map(Endpoint::Sim).collect()
    }
}

impl Service<SimRequest> for Endpoint {
    type Response = SimResponse;
    type Error = BoxError;
    type Future = SimFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SimRequest) -> SimFuture {
        match self {
            Endpoint::Sim(backend) => backend.call(req),
            Endpoint::Http(backend) => backend.call(req),
        }
    }
}

impl Service<SimRequest> for RoundRobin {
    type Response = SimResponse;
    type Error = BoxError;
    type Future = SimFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SimRequest) -> SimFuture {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints[i].clone().call(req)
    }
}

/// `--real`: the simulated backends behind hyper servers on 127.0.0.1.
mod real {
    use std::convert::Infallible;
    use std::io::Write as _;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::server::conn::http1;
    use hyper::{Request, Response, StatusCode, Uri};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::Service;
    use tower_fortify::drill::{SimBackend, SimFuture, SimRequest, SimResponse};

    pub(crate) static ENABLED: AtomicBool = AtomicBool::new(false);

    /// A client for one backend's server.
    #[derive(Clone)]
    pub(crate) struct HttpBackend {
        index: usize,
        uri: Uri,
        client: Client<HttpConnector, Empty<Bytes>>,
    }

    impl HttpBackend {
        pub(crate) fn call(&self, req: SimRequest) -> SimFuture {
            let this = self.clone();
            Box::pin(async move {
                let request = Request::get(this.uri.clone())
                    .header("x-request-id", req.id)
                    .body(Empty::new())?;
                let response = this.client.request(request).await?;
                if response.status() == StatusCode::OK {
                    Ok(SimResponse {
                        backend: this.index,
                    })
                } else {
                    Err(format!("backend {} answered {}", this.index, response.status()).into())
                }
            })
        }
    }

    /// Starts one HTTP server per backend on 127.0.0.1 (ports chosen by the system)
    /// and returns a client for each. The servers live as long as the runtime.
    pub(crate) fn serve(backends: &[SimBackend]) -> Vec<HttpBackend> {
        let client = Client::builder(TokioExecutor::new()).build_http();
        backends
            .iter()
            .map(|backend| {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
                listener.set_nonblocking(true).expect("non-blocking socket");
                let addr = listener.local_addr().expect("a local address");
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let index = backend.index();
                let backend = backend.clone();
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let backend = backend.clone();
                        tokio::spawn(async move {
                            let handler = hyper::service::service_fn(
                                move |req: Request<hyper::body::Incoming>| {
                                    let mut backend = backend.clone();
                                    let id = req
                                        .headers()
                                        .get("x-request-id")
                                        .and_then(|v| v.to_str().ok()?.parse().ok())
                                        .unwrap_or(0);
                                    async move {
                                        let status = match backend.call(SimRequest { id }).await {
                                            Ok(_) => StatusCode::OK,
                                            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                                        };
                                        let mut response = Response::new(Empty::<Bytes>::new());
                                        *response.status_mut() = status;
                                        Ok::<_, Infallible>(response)
                                    }
                                },
                            );
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), handler)
                                .await;
                        });
                    }
                });
                HttpBackend {
                    index,
                    uri: format!("http://{addr}/").parse().expect("a valid URI"),
                    client: client.clone(),
                }
            })
            .collect()
    }

    /// Draws a progress bar on standard error until aborted.
    pub(crate) async fn progress(total: Duration) {
        let start = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let done = start.elapsed().min(total);
            let width = 40;
            let filled = (done.as_secs_f64() / total.as_secs_f64() * width as f64) as usize;
            eprint!(
                "\r  [{}{}] {:>5.1} / {:.0} s",
                "#".repeat(filled),
                "-".repeat(width - filled),
                done.as_secs_f64(),
                total.as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: drill [--list] [--print NAME] [--scenario NAME|FILE] [--seed N] [--real] [--wrong-order]"
    );
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut scenario_arg = String::from(Scenario::builtin_names()[0]);
    let mut seed = 1u64;
    let mut wrong = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => {
                for s in Scenario::builtins() {
                    println!("{:<16} {}", s.name(), s.description());
                }
                return;
            }
            "--scenario" => scenario_arg = args.next().unwrap_or_else(|| usage()),
            "--print" => {
                // A built-in scenario as TOML, to start a file of your own from.
                let name = args.next().unwrap_or_else(|| usage());
                match Scenario::builtin(&name) {
                    Some(s) => print!("{}", s.to_toml()),
                    None => usage(),
                }
                return;
            }
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage());
            }
            "--real" => real::ENABLED.store(true, Ordering::Relaxed),
            "--wrong-order" => wrong = true,
            _ => usage(),
        }
    }
    let scenario = match Scenario::builtin(&scenario_arg) {
        Some(s) => s,
        None => Scenario::load_file(&scenario_arg).unwrap_or_else(|e| {
            eprintln!("{e}");
            eprintln!(
                "(built-in scenarios: {})",
                Scenario::builtin_names().join(", ")
            );
            std::process::exit(1);
        }),
    };

    let scenario = if real::ENABLED.load(Ordering::Relaxed) {
        // Real time: at most 20 s per stack, at a fifth of the rate.
        let factor = (20.0 / scenario.run_time().as_secs_f64()).min(1.0);
        println!(
            "--real: HTTP over 127.0.0.1, real time, the scenario shrunk to 20 s at 1/5 of its rate"
        );
        scenario.scaled(factor, 0.2)
    } else {
        scenario
    };
    println!("scenario `{}`: {}", scenario.name(), scenario.description());
    println!("seed {seed}; every stack sees the same requests and the same faults\n");
    let mut reports = Vec::new();
    let extra = if wrong { Some(&WRONG_ORDER) } else { None };
    for (name, what, run) in STACKS.iter().chain(extra) {
        let drill = Drill::new(scenario.clone())
            .seed(seed)
            .label(*name)
            .states(states);
        println!("{name:<14} {what}");
        let report = run(&drill);
        reports.push(report);
    }
    println!();
    print!("{}", comparison_table(&reports));
    println!();
    print!("{}", verdicts(&reports));
    println!();
    for r in &reports {
        for f in &r.faults {
            println!(
                "{:<14} during `{}` on {}: {:.2} % of requests succeeded, {} s below {:.0} %",
                r.stack,
                f.phase,
                f.target(),
                f.availability * 100.0,
                f.impaired_s,
                r.threshold * 100.0
            );
        }
    }
    println!("\nwhat each stack bought over the one above it:");
    for pair in reports.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        println!(
            "  {:<14} availability {:+.3} points ({:.3} % -> {:.3} %), load x{:.3} (was x{:.3}), p99 {:+.1} ms",
            after.stack,
            (after.availability - before.availability) * 100.0,
            before.availability * 100.0,
            after.availability * 100.0,
            after.amplification,
            before.amplification,
            after.latency_ms.p99 - before.latency_ms.p99,
        );
    }
    let json = serde_json_array(&reports);
    std::fs::write("drill-report.json", json).expect("write drill-report.json");
    std::fs::write("drill-report.svg", svg_chart(&reports)).expect("write drill-report.svg");
    println!("\nwrote drill-report.json and drill-report.svg");
}

/// The reports as one JSON array.
fn serde_json_array(reports: &[Report]) -> String {
    let parts: Vec<String> = reports.iter().map(Report::to_json).collect();
    format!("[\n{}\n]\n", parts.join(",\n"))
}
