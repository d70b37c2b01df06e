//! Drills on real processes: the scenario's backends run as child processes on
//! 127.0.0.1, faults are signals and control calls, the load goes through the
//! user's real client stack, in real time.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::time::Instant;
use tower_service::Service;

use super::backend::Phase;
use super::measure::{EventLog, Recorder, StateFn};
use super::proxy::{ChaosProxy, NetFault};
use super::report::{self, BackendCounts, Report};
use super::scenario::Scenario;
use crate::config::{ConfigError, check_range};
use crate::observe::{Event, FailoverEvent, Listener, RetryEvent};
use crate::rng::Rng;

/// The request body a process drill sends.
pub type ProcessBody = Full<Bytes>;

/// Runs a [`Scenario`] against real backend processes that it starts itself on
/// 127.0.0.1, through the stack you build over their URLs (a
/// [`Stack::http`](crate::stack::Stack::http), say), in real time.
///
/// Each backend is one process of `program` (the crate ships one:
/// `fortify-drill-backend`, the binary of the `drill-process` feature), started with
/// `--port P --latency-ms L --error-rate E` (and `--grpc` by
/// [`run_grpc`](Self::run_grpc), which drills a gRPC client stack). Faults are applied as they would be in
/// production:
///
/// * `down` — the process is killed with SIGKILL (connections reset, port closed) and
///   started again on the same port when the phase ends;
/// * `flapping` — killed and restarted on every down and up spell;
/// * `hang` — stopped with SIGSTOP (connections open, nothing answers) and resumed
///   with SIGCONT when the phase ends;
/// * `brownout`, `slow` and `tail` — set through the backend's control endpoint
///   (`POST /_control?error_rate=E&factor=F&tail_share=S&tail_factor=T`), reset when
///   the phase ends.
///
/// The report is the paused-time drill's ([`Report`]), with the same assertions.
/// Calls per backend are counted by the client, from the router's per-call events:
/// give [`ProcessEnv::listener_for`] to the stack (`.listeners(..)`), as the example
/// below does. Every process is killed and reaped when the drill ends, fails or is
/// dropped.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_fortify::BoxError> {
/// use tower_fortify::drill::{ProcessBody, ProcessDrill, Scenario};
/// use tower_fortify::stack::Stack;
///
/// let scenario = Scenario::builtin("backend-outage").unwrap().scaled(0.25, 0.1);
/// let drill = ProcessDrill::new(scenario, "target/debug/fortify-drill-backend");
/// let report = drill
///     .run(|env| {
///         let log = env.clone();
///         Stack::http::<_>(env.urls())
///             .unwrap()
///             .listeners(move |source| Some(log.listener_for(source)))
///             .build()
///             .unwrap()
///     })
///     .await?;
/// report.assert_availability_at_least(0.999)?;
/// # let _: Option<ProcessBody> = None;
/// # Ok(()) }
/// ```
pub struct ProcessDrill {
    scenario: Scenario,
    target: Target,
    label: String,
    threshold: f64,
    progress: bool,
    states: Option<StateFn>,
}

impl fmt::Debug for ProcessDrill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessDrill")
            .field("scenario", &self.scenario.name)
            .field("target", &self.target)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// What the stack builder of a [`ProcessDrill`] gets: the backends' URLs and the
/// listeners that count calls per backend and record events for the report.
#[derive(Clone)]
pub struct ProcessEnv {
    urls: Vec<String>,
    /// The scenario's backend names, in the order of `urls`.
    names: Vec<String>,
    events: EventLog,
    counts: Arc<Counts>,
}

impl fmt::Debug for ProcessEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessEnv")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl ProcessEnv {
    /// The backends' URLs (`http://127.0.0.1:PORT`), in the scenario's order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// A listener for one part of the stack (`StackBuilder::listeners` calls with
    /// `"router"`, `"retry"`, a backend's id, ...): the router's per-call events count
    /// the calls each backend got, the retry layer's count the retries, and every
    /// event goes to the report under `source`.
    pub fn listener_for(&self, source: &str) -> ProcessListener {
        // A backend's breaker is named after its URL: report it under the scenario's
        // name for the backend, as the paused-time drill does.
        let source = match self.urls.iter().position(|u| u == source) {
            Some(i) => &self.names[i],
            None => source,
        };
        ProcessListener {
            log: self.events.with_source(source),
            counts: self.counts.clone(),
        }
    }
}

/// Calls per backend per second, and retries, counted from the stack's events.
struct Counts {
    epoch: Instant,
    index: HashMap<String, usize>,
    per_second: Mutex<Vec<Vec<[u64; 2]>>>,
    retries: std::sync::atomic::AtomicU64,
}

/// The listener [`ProcessEnv::listener_for`] returns.
#[derive(Clone)]
pub struct ProcessListener {
    log: EventLog,
    counts: Arc<Counts>,
}

impl fmt::Debug for ProcessListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessListener").finish_non_exhaustive()
    }
}

impl Listener for ProcessListener {
    fn on_event(&self, event: &Event) {
        match event {
            Event::Failover(FailoverEvent::Attempt {
                backend, success, ..
            }) => {
                let Some(&i) = self.counts.index.get(&**backend) else {
                    return;
                };
                let t = self.counts.epoch.elapsed().as_secs() as usize;
                let mut per_second = self
                    .counts
                    .per_second
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let seconds = &mut per_second[i];
                let t = t.min(seconds.len() - 1);
                seconds[t][0] += 1;
                if !success {
                    seconds[t][1] += 1;
                }
            }
            Event::Retry(RetryEvent::Finished { attempts, .. }) => {
                self.counts.retries.fetch_add(
                    u64::from(attempts.saturating_sub(1)),
                    std::sync::atomic::Ordering::Relaxed,
                );
                self.log.on_event(event);
            }
            _ => self.log.on_event(event),
        }
    }

    /// The router's per-call events count the calls each backend got.
    fn per_call(&self) -> bool {
        true
    }
}

/// What went wrong starting a process drill.
#[derive(Debug)]
pub struct ProcessDrillError(String);

impl fmt::Display for ProcessDrillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProcessDrillError {}

impl From<ConfigError> for ProcessDrillError {
    fn from(e: ConfigError) -> Self {
        Self(e.to_string())
    }
}

/// What the drill runs against.
#[derive(Debug, Clone)]
enum Target {
    /// Processes of this program, started by the drill.
    Program(PathBuf),
    /// Services already running, behind a chaos proxy each.
    Services(Vec<SocketAddr>),
}

/// The backends under drill: processes it owns, or proxies in front of services.
enum Backends {
    Processes(Fleet),
    Proxies(Vec<ChaosProxy>),
}

impl Backends {
    /// Where a backend listens (the process's port or the proxy's).
    fn port(&self, i: usize) -> u16 {
        match self {
            Backends::Processes(f) => f.ports[i],
            Backends::Proxies(p) => p[i].addr().port(),
        }
    }
}

/// The backend processes; every one is killed and reaped when this is dropped.
struct Fleet {
    program: PathBuf,
    ports: Vec<u16>,
    args: Vec<Vec<String>>,
    children: Vec<Option<Child>>,
}

impl Fleet {
    fn spawn(&mut self, i: usize) -> Result<(), ProcessDrillError> {
        let child = Command::new(&self.program)
            .arg("--port")
            .arg(self.ports[i].to_string())
            .args(&self.args[i])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                ProcessDrillError(format!(
                    "cannot start the backend program {}: {e}",
                    self.program.display()
                ))
            })?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// Sends a signal (`-STOP`, `-CONT`) with the system's `kill`.
    fn signal(&mut self, i: usize, signal: &str) {
        if let Some(child) = &self.children[i] {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGKILL, then reap (a stopped process dies as well).
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// One thing to do to a backend at a time since the start.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Kill,
    Start,
    /// SIGSTOP: the process stops answering, its connections stay open.
    Stop,
    /// SIGCONT: it answers again, backlog first.
    Resume,
    Control {
        error_rate: f64,
        factor: f64,
        /// A latency tail: this share of calls `tail_factor` times slower.
        tail_share: f64,
        tail_factor: f64,
    },
}

/// The scenario's phases as actions on processes, in time order.
fn schedule(scenario: &Scenario) -> Vec<(Duration, usize, Action)> {
    let end = scenario.duration;
    let mut out = Vec::new();
    for (i, spec) in scenario.backends.iter().enumerate() {
        let mut down = false;
        let mut hung = false;
        let mut controlled = false;
        for (k, (at, phase)) in spec.phases.iter().enumerate() {
            let until = spec.phases.get(k + 1).map_or(end, |p| p.0).min(end);
            let heal = |out: &mut Vec<_>, at: Duration, down: &mut bool| {
                if *down {
                    out.push((at, i, Action::Start));
                    *down = false;
                }
            };
            // A stopped process is resumed when its hang ends.
            if hung && !matches!(phase, Phase::Hang) {
                out.push((*at, i, Action::Resume));
                hung = false;
            }
            match *phase {
                Phase::Healthy => {
                    heal(&mut out, *at, &mut down);
                    if controlled {
                        out.push((
                            *at,
                            i,
                            Action::Control {
                                error_rate: spec.error_rate,
                                factor: 1.0,
                                tail_share: 0.0,
                                tail_factor: 1.0,
                            },
                        ));
                        controlled = false;
                    }
                }
                Phase::Down => {
                    if !down {
                        out.push((*at, i, Action::Kill));
                        down = true;
                    }
                }
                Phase::Hang => {
                    heal(&mut out, *at, &mut down);
                    if !hung {
                        out.push((*at, i, Action::Stop));
                        hung = true;
                    }
                }
                Phase::Brownout { error_rate } => {
                    heal(&mut out, *at, &mut down);
                    out.push((
                        *at,
                        i,
                        Action::Control {
                            error_rate,
                            factor: 1.0,
                            tail_share: 0.0,
                            tail_factor: 1.0,
                        },
                    ));
                    controlled = true;
                }
                Phase::Slow { factor } => {
                    heal(&mut out, *at, &mut down);
                    out.push((
                        *at,
                        i,
                        Action::Control {
                            error_rate: spec.error_rate,
                            factor,
                            tail_share: 0.0,
                            tail_factor: 1.0,
                        },
                    ));
                    controlled = true;
                }
                Phase::Tail { share, factor } => {
                    heal(&mut out, *at, &mut down);
                    out.push((
                        *at,
                        i,
                        Action::Control {
                            error_rate: spec.error_rate,
                            factor: 1.0,
                            tail_share: share,
                            tail_factor: factor,
                        },
                    ));
                    controlled = true;
                }
                Phase::Flapping { down: d, up } => {
                    heal(&mut out, *at, &mut down);
                    let mut t = *at;
                    while t < until {
                        out.push((t, i, Action::Kill));
                        let back = (t + d).min(until);
                        out.push((back, i, Action::Start));
                        t = back + up;
                    }
                }
            }
        }
    }
    out.sort_by_key(|&(at, i, _)| (at, i));
    out
}

/// Whether a gRPC answer says `OK`: its `grpc-status` in the headers (trailers-only),
/// or else in the trailers at the end of the body.
async fn grpc_ok<B: http_body::Body>(response: http::Response<B>) -> bool {
    use http_body_util::BodyExt;
    if let Some(status) = response.headers().get("grpc-status") {
        return status == "0";
    }
    match response.into_body().collect().await {
        Ok(collected) => collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .is_some_and(|s| s == "0"),
        Err(_) => false,
    }
}

/// A free port on 127.0.0.1 (bound, then released for the child to take).
fn free_port() -> Result<u16, ProcessDrillError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ProcessDrillError(format!("cannot bind 127.0.0.1: {e}")))?;
    Ok(listener
        .local_addr()
        .map_err(|e| ProcessDrillError(e.to_string()))?
        .port())
}

/// Waits until something accepts connections on `port`: at most 5 s.
async fn listening(port: u16) -> bool {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// `POST /_control` on one backend: error rate, latency factor, tail share and factor.
async fn control(port: u16, [error_rate, factor, tail_share, tail_factor]: [f64; 4]) {
    use hyper_util::client::legacy::Client;
    let client: Client<_, Full<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let uri = format!(
        "http://127.0.0.1:{port}/_control?error_rate={error_rate}&factor={factor}\
         &tail_share={tail_share}&tail_factor={tail_factor}"
    );
    if let Ok(req) = http::Request::post(uri).body(Full::default()) {
        let _ = tokio::time::timeout(Duration::from_secs(2), client.request(req)).await;
    }
}

/// Starts one process per backend and waits until each listens.
async fn start_processes(
    scenario: &Scenario,
    program: &Path,
    grpc: bool,
) -> Result<Fleet, ProcessDrillError> {
    let n = scenario.backends.len();
    let mut fleet = Fleet {
        program: program.to_path_buf(),
        ports: (0..n).map(|_| free_port()).collect::<Result<_, _>>()?,
        args: scenario
            .backends
            .iter()
            .map(|b| {
                let mut args = vec![
                    "--latency-ms".into(),
                    format!("{}", b.latency.median().as_secs_f64() * 1000.0),
                    "--error-rate".into(),
                    b.error_rate.to_string(),
                ];
                if grpc {
                    args.push("--grpc".into());
                }
                args
            })
            .collect(),
        children: (0..n).map(|_| None).collect(),
    };
    for i in 0..n {
        fleet.spawn(i)?;
    }
    for i in 0..n {
        if !listening(fleet.ports[i]).await {
            return Err(ProcessDrillError(format!(
                "backend {} did not listen on 127.0.0.1:{} within 5 s",
                scenario.backends[i].name, fleet.ports[i]
            )));
        }
    }
    Ok(fleet)
}

/// Starts one chaos proxy per service, after checking the scenario fits them.
async fn start_proxies(
    scenario: &Scenario,
    services: &[SocketAddr],
) -> Result<Vec<ChaosProxy>, ProcessDrillError> {
    if services.len() != scenario.backends.len() {
        return Err(ProcessDrillError(format!(
            "the scenario has {} backends but {} services were given",
            scenario.backends.len(),
            services.len()
        )));
    }
    for spec in &scenario.backends {
        if let Some((_, phase)) = spec
            .phases
            .iter()
            .find(|(_, p)| matches!(p, Phase::Brownout { .. } | Phase::Tail { .. }))
        {
            return Err(ProcessDrillError(format!(
                "backend {}: phase `{}` needs the service's cooperation; a proxy can only \
                 refuse, reset, hold or slow connections (use down, flapping or slow)",
                spec.name,
                phase.name()
            )));
        }
    }
    let mut proxies = Vec::with_capacity(services.len());
    for &service in services {
        proxies.push(
            ChaosProxy::start(service).await.map_err(|e| {
                ProcessDrillError(format!("cannot start a proxy to {service}: {e}"))
            })?,
        );
    }
    Ok(proxies)
}

/// Applies one scheduled action to backend `i`.
async fn apply(backends: &Mutex<Backends>, i: usize, action: Action, median: Duration) {
    // What is left to await once the lock is released.
    enum Then {
        Nothing,
        Listen(u16),
        Control(u16, [f64; 4]),
    }
    let then = {
        let mut guard = backends.lock().unwrap_or_else(PoisonError::into_inner);
        let port = guard.port(i);
        match (&mut *guard, action) {
            (Backends::Processes(fleet), Action::Kill) => {
                fleet.kill(i);
                Then::Nothing
            }
            (Backends::Processes(fleet), Action::Start) => match fleet.spawn(i) {
                Ok(()) => Then::Listen(port),
                Err(_) => Then::Nothing,
            },
            (
                Backends::Processes(_),
                Action::Control {
                    error_rate,
                    factor,
                    tail_share,
                    tail_factor,
                },
            ) => Then::Control(port, [error_rate, factor, tail_share, tail_factor]),
            (Backends::Processes(fleet), Action::Stop) => {
                fleet.signal(i, "-STOP");
                Then::Nothing
            }
            (Backends::Processes(fleet), Action::Resume) => {
                fleet.signal(i, "-CONT");
                Then::Nothing
            }
            (Backends::Proxies(p), Action::Stop) => {
                p[i].set(NetFault::Blackhole);
                Then::Nothing
            }
            (Backends::Proxies(p), Action::Resume) => {
                p[i].set(NetFault::None);
                Then::Nothing
            }
            (Backends::Proxies(p), Action::Kill) => {
                p[i].set(NetFault::Refuse);
                Then::Nothing
            }
            (Backends::Proxies(p), Action::Start) => {
                p[i].set(NetFault::None);
                Then::Nothing
            }
            (Backends::Proxies(p), Action::Control { factor, .. }) => {
                p[i].set(if factor > 1.0 {
                    NetFault::Latency(median.mul_f64(factor - 1.0))
                } else {
                    NetFault::None
                });
                Then::Nothing
            }
        }
    };
    match then {
        Then::Nothing => {}
        Then::Listen(port) => {
            listening(port).await;
        }
        Then::Control(port, settings) => control(port, settings).await,
    }
}

impl ProcessDrill {
    /// A drill of `scenario` with backends run by `program`. Labelled `"stack"`,
    /// threshold 99 % (as [`Drill`](super::Drill)), no progress bar.
    pub fn new(scenario: Scenario, program: impl AsRef<Path>) -> Self {
        Self::with_target(scenario, Target::Program(program.as_ref().to_path_buf()))
    }

    /// A drill of `scenario` against services that are already running, written in
    /// any language: the scenario's backends are `services`, in order, each behind a
    /// [`ChaosProxy`] on 127.0.0.1 that the drill starts. The stack is built over the
    /// proxies' URLs. `down` and `flapping` close the proxy's port (connections
    /// refused, open ones reset), `hang` holds every byte (a black hole) until the phase
    /// ends, `slow` delays the service's answers by its median
    /// latency × (factor − 1). `brownout` needs the service's cooperation (a TCP proxy
    /// cannot fail a share of requests on a kept-alive connection): [`run`](Self::run)
    /// rejects it, naming the backend.
    pub fn against(scenario: Scenario, services: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self::with_target(scenario, Target::Services(services.into_iter().collect()))
    }

    fn with_target(scenario: Scenario, target: Target) -> Self {
        Self {
            scenario,
            target,
            label: "stack".into(),
            threshold: 0.99,
            progress: false,
            states: None,
        }
    }

    /// The stack's name in the report.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The availability a second needs to count as served (default 0.99).
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Reads state transitions from the stack's events for the report and the chart,
    /// as [`Drill::states`](super::Drill::states) does.
    pub fn states(
        mut self,
        f: impl Fn(&str, &crate::observe::Event) -> Option<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        self.states = Some(Arc::new(f));
        self
    }

    /// Draws a progress bar (indicatif) on standard error while the drill runs.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Starts the backends, builds the stack with `build`, sends the scenario's load
    /// through it in real time while applying the faults, and reports. Takes the
    /// scenario's run time (its duration, then at most its drain time).
    ///
    /// Each request is a `GET /drill?id=N`; a call succeeds when it answers a `2xx`.
    pub async fn run<F, S, RB>(&self, build: F) -> Result<Report, ProcessDrillError>
    where
        F: FnOnce(&ProcessEnv) -> S,
        S: Service<http::Request<ProcessBody>, Response = http::Response<RB>>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
        S::Error: Send + 'static,
        RB: Send + 'static,
    {
        self.run_with(build, false, |mut svc: S, id| async move {
            let req = http::Request::get(format!("/drill?id={id}"))
                .body(ProcessBody::default())
                .expect("a valid request");
            let result = match std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
                Ok(()) => svc.call(req).await,
                Err(e) => Err(e),
            };
            matches!(&result, Ok(r) if r.status().is_success())
        })
        .await
    }

    /// [`run`](Self::run) over gRPC: the backend processes speak gRPC over HTTP/2
    /// (`fortify-drill-backend --grpc`; a failed call is `UNAVAILABLE`), and each
    /// request is a unary call to `/fortify.drill.Backend/Call` with
    /// `content-type: application/grpc`. A call succeeds when its `grpc-status` —
    /// in the headers of a trailers-only answer, or in the trailers — is `0`.
    ///
    /// Build the stack over tonic `Channel`s, one per URL, as a service would:
    ///
    /// ```no_run
    /// # #[cfg(feature = "grpc")]
    /// # async fn run() -> Result<(), tower_fortify::BoxError> {
    /// use tower::ServiceBuilder;
    /// use tower_fortify::drill::{ProcessBody, ProcessDrill, Scenario};
    /// use tower_fortify::http::{ReplayBody, ReplayBodyLayer};
    /// use tower_fortify::stack::Stack;
    ///
    /// let scenario = Scenario::builtin("backend-outage").unwrap().scaled(0.1, 0.1);
    /// let drill = ProcessDrill::new(scenario, "target/debug/fortify-drill-backend");
    /// let report = drill
    ///     .run_grpc(|env| {
    ///         let log = env.clone();
    ///         let mut stack = Stack::grpc();
    ///         for url in env.urls() {
    ///             let channel = tonic::transport::Channel::from_shared(url.clone())
    ///                 .unwrap()
    ///                 .connect_lazy();
    ///             let backend = ServiceBuilder::new()
    ///                 .map_request(|r: http::Request<ReplayBody<ProcessBody>>| {
    ///                     r.map(tonic::body::Body::new)
    ///                 })
    ///                 .service(channel);
    ///             stack = stack.backend(url.clone(), backend);
    ///         }
    ///         let stack = stack
    ///             .listeners(move |source| Some(log.listener_for(source)))
    ///             .build()
    ///             .unwrap();
    ///         ServiceBuilder::new()
    ///             .layer(ReplayBodyLayer::new(64 * 1024))
    ///             .service(stack)
    ///     })
    ///     .await?;
    /// report.assert_availability_at_least(0.999)?;
    /// # Ok(()) }
    /// ```
    pub async fn run_grpc<F, S, RB>(&self, build: F) -> Result<Report, ProcessDrillError>
    where
        F: FnOnce(&ProcessEnv) -> S,
        S: Service<http::Request<ProcessBody>, Response = http::Response<RB>>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
        S::Error: Send + 'static,
        RB: http_body::Body + Send + 'static,
        RB::Data: Send,
        RB::Error: Send,
    {
        self.run_with(build, true, |mut svc: S, id| async move {
            // One message: not compressed, then its length and the id as text.
            let message = id.to_string();
            let mut frame = Vec::with_capacity(5 + message.len());
            frame.push(0);
            frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
            frame.extend_from_slice(message.as_bytes());
            let req = http::Request::post("/fortify.drill.Backend/Call")
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header(http::header::TE, "trailers")
                .body(ProcessBody::new(Bytes::from(frame)))
                .expect("a valid request");
            let response = match std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
                Ok(()) => match svc.call(req).await {
                    Ok(response) => response,
                    Err(_) => return false,
                },
                Err(_) => return false,
            };
            grpc_ok(response).await
        })
        .await
    }

    async fn run_with<F, S, G, Fut>(
        &self,
        build: F,
        grpc: bool,
        send: G,
    ) -> Result<Report, ProcessDrillError>
    where
        F: FnOnce(&ProcessEnv) -> S,
        S: Clone,
        G: Fn(S, u64) -> Fut,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        let scenario = &self.scenario;
        scenario.validate()?;
        check_range("drill.threshold", self.threshold, 0.0, 1.0)?;
        let n = scenario.backends.len();
        let backends = match &self.target {
            Target::Program(program) => {
                Backends::Processes(start_processes(scenario, program, grpc).await?)
            }
            Target::Services(services) => {
                Backends::Proxies(start_proxies(scenario, services).await?)
            }
        };
        let urls: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", backends.port(i)))
            .collect();

        let seconds = scenario.duration.as_secs_f64().ceil() as usize;
        let counted = seconds + scenario.drain.as_secs_f64().ceil() as usize + 1;
        let epoch = Instant::now();
        let counts = Arc::new(Counts {
            epoch,
            index: urls.iter().cloned().zip(0..).collect(),
            per_second: Mutex::new(vec![vec![[0, 0]; counted]; n]),
            retries: Default::default(),
        });
        let events = EventLog::new(epoch, self.states.clone());
        let env = ProcessEnv {
            urls: urls.clone(),
            names: scenario.backends.iter().map(|b| b.name.clone()).collect(),
            events: events.clone(),
            counts: counts.clone(),
        };
        let service = build(&env);

        // The faults, on their own task; it owns the processes while it runs.
        let backends = Arc::new(Mutex::new(backends));
        let medians: Vec<Duration> = scenario
            .backends
            .iter()
            .map(|b| b.latency.median())
            .collect();
        let faults = {
            let backends = backends.clone();
            let plan = schedule(scenario);
            tokio::spawn(async move {
                for (at, i, action) in plan {
                    tokio::time::sleep_until(epoch + at).await;
                    apply(&backends, i, action, medians[i]).await;
                }
            })
        };
        let progress = self.progress.then(|| {
            let bar = indicatif::ProgressBar::new(scenario.duration.as_secs());
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} s")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(format!("{} on processes", scenario.name));
            let ticker = bar.clone();
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    ticker.set_position(epoch.elapsed().as_secs());
                }
            });
            (bar, task)
        });

        let recorder = Arc::new(Recorder::new(seconds));
        super::runner::send_load(
            scenario,
            Rng::seeded(0x5eed),
            epoch,
            &recorder,
            |id, done| {
                let call = send(service.clone(), id);
                async move { done(call.await) }
            },
        )
        .await;
        drop(service);
        let _ = tokio::time::timeout(scenario.drain, recorder.drained()).await;
        faults.abort();
        let _ = faults.await;
        if let Some((bar, task)) = progress {
            task.abort();
            bar.finish();
        }
        // Every process killed and reaped, every proxy stopped (the fault task has
        // ended, so this is the last reference).
        drop(backends);

        let per_second = std::mem::take(
            &mut *counts
                .per_second
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let backends: Vec<BackendCounts> = scenario
            .backends
            .iter()
            .zip(per_second)
            .map(|(spec, per_second)| BackendCounts {
                name: spec.name.clone(),
                tier: spec.tier,
                zone: spec.zone.clone(),
                per_second,
            })
            .collect();
        let inner = recorder.take();
        Ok(report::build(report::Inputs {
            scenario,
            label: &self.label,
            seed: 0,
            threshold: self.threshold,
            backends: &backends,
            latency: inner.latency,
            seconds: inner.seconds,
            events: events.take(),
            repeats: counts.retries.load(std::sync::atomic::Ordering::Relaxed),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::BackendSpec;

    #[test]
    fn a_hang_is_a_stop_then_a_resume() {
        let s = Scenario::new("x")
            .duration(Duration::from_secs(30))
            .backend(
                BackendSpec::new("a")
                    .phase(Duration::from_secs(5), Phase::Hang)
                    .phase(Duration::from_secs(9), Phase::Healthy),
            );
        assert_eq!(
            schedule(&s),
            vec![
                (Duration::from_secs(5), 0, Action::Stop),
                (Duration::from_secs(9), 0, Action::Resume),
            ]
        );
    }

    #[test]
    fn phases_become_kills_restarts_and_controls() {
        let s = Scenario::new("x")
            .duration(Duration::from_secs(30))
            .backend(
                BackendSpec::new("a")
                    .phase(Duration::from_secs(5), Phase::Down)
                    .phase(Duration::from_secs(10), Phase::Healthy),
            )
            .backend(
                BackendSpec::new("b")
                    .phase(Duration::from_secs(2), Phase::Brownout { error_rate: 0.3 })
                    .phase(Duration::from_secs(4), Phase::Healthy)
                    .phase(
                        Duration::from_secs(20),
                        Phase::Flapping {
                            down: Duration::from_secs(2),
                            up: Duration::from_secs(3),
                        },
                    ),
            );
        let plan = schedule(&s);
        let at = |s: u64| Duration::from_secs(s);
        let control = |error_rate| Action::Control {
            error_rate,
            factor: 1.0,
            tail_share: 0.0,
            tail_factor: 1.0,
        };
        assert_eq!(
            plan,
            vec![
                (at(2), 1, control(0.3)),
                (at(4), 1, control(0.0)),
                (at(5), 0, Action::Kill),
                (at(10), 0, Action::Start),
                (at(20), 1, Action::Kill),
                (at(22), 1, Action::Start),
                (at(25), 1, Action::Kill),
                (at(27), 1, Action::Start),
            ]
        );
    }
}
