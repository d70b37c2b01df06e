use std::time::Duration;

/// How the retry layer copies a request so it can send it again, and what the request
/// itself says about being retried.
///
/// The layer keeps one copy of the request while attempts remain and hands the inner
/// service a fresh copy per attempt (the last attempt gets the kept copy itself). A
/// request whose [`replay`](Self::replay) returns `None` is sent once and never
/// retried — the skip is reported as [`SkipReason::NotReplayable`].
///
/// [`CloneReplay`] (the default) works for every `Clone` request. The HTTP integration
/// adds a replay that buffers streamed bodies.
///
/// [`SkipReason::NotReplayable`]: crate::observe::SkipReason::NotReplayable
pub trait Replay<Req> {
    /// A copy of `req` to send, or `None` if it cannot be copied.
    fn replay(&self, req: &Req) -> Option<Req>;

    /// Whether `req`, kept for another attempt, can still be copied. The retry layer
    /// asks before it schedules a retry and reports
    /// [`SkipReason::NotReplayable`](crate::observe::SkipReason::NotReplayable) when
    /// the answer is no (an HTTP body that went past its replay cap, for instance).
    /// The default says yes.
    fn is_replayable(&self, req: &Req) -> bool {
        let _ = req;
        true
    }

    /// Per-request settings carried by the request (for HTTP, a [`RetryOverride`] in
    /// its extensions). The default reads nothing.
    fn overrides(&self, req: &Req) -> RetryOverride {
        let _ = req;
        RetryOverride::default()
    }
}

/// Replays any `Clone` request by cloning it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneReplay;

impl<Req: Clone> Replay<Req> for CloneReplay {
    #[inline]
    fn replay(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Replays with a closure `Fn(&Req) -> Option<Req>`; see [`replay_fn`].
#[derive(Clone, Copy)]
pub struct ReplayFn<F> {
    f: F,
}

impl<F> std::fmt::Debug for ReplayFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayFn").finish_non_exhaustive()
    }
}

/// Makes a [`Replay`] from a closure, for requests that are not `Clone` or that
/// decide for themselves whether they may be sent twice.
///
/// ```
/// use tower_fortify::retry::{replay_fn, Replay};
///
/// // Only requests marked idempotent may be retried.
/// struct Req { idempotent: bool, body: Vec<u8> }
/// let replay = replay_fn(|r: &Req| r.idempotent.then(|| Req { idempotent: true, body: r.body.clone() }));
/// assert!(replay.replay(&Req { idempotent: false, body: vec![] }).is_none());
/// ```
pub fn replay_fn<F>(f: F) -> ReplayFn<F> {
    ReplayFn { f }
}

impl<F, Req> Replay<Req> for ReplayFn<F>
where
    F: Fn(&Req) -> Option<Req>,
{
    fn replay(&self, req: &Req) -> Option<Req> {
        (self.f)(req)
    }
}

/// Settings one request can carry to change how it is retried.
///
/// With the `http` feature, put one in an `http::Request`'s extensions and use
/// [`HttpReplay`](crate::http::HttpReplay):
///
/// ```
/// # #[cfg(feature = "http")] {
/// use tower_fortify::retry::RetryOverride;
///
/// let mut req = http::Request::new(String::from("payload"));
/// req.extensions_mut().insert(RetryOverride::disabled());
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOverride {
    pub(crate) disabled: bool,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) deadline_at: Option<tokio::time::Instant>,
}

impl RetryOverride {
    /// These settings, with retries turned off for this request.
    pub fn disable(mut self) -> Self {
        self.disabled = true;
        self
    }

    /// Send this request once, never retry it.
    pub fn disabled() -> Self {
        Self {
            disabled: true,
            ..Self::default()
        }
    }

    /// Use `max_attempts` (at least 1) for this request instead of the layer's value.
    pub fn max_attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: Some(max_attempts.max(1)),
            ..Self::default()
        }
    }

    /// Give this request's attempts together at most `deadline`, in place of the
    /// layer's deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Start no backoff and no attempt that would end past `at`, in place of the
    /// layer's deadline. This is how an overall deadline set above the retry layer
    /// (the one-call stacks' [`Deadline`](crate::timeout::Deadline)) reaches it as
    /// the same instant, not a second clock reading.
    pub fn with_deadline_at(mut self, at: tokio::time::Instant) -> Self {
        self.deadline_at = Some(at);
        self
    }
}
