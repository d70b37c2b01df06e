//! What a layer's refusal means for the caller on the other side of the wire.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

/// The kind of refusal an error stands for, which decides the status a server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The service cannot take the call now (an open circuit breaker, a full
    /// bulkhead, shed load): HTTP 503, gRPC `UNAVAILABLE`.
    Unavailable,
    /// The caller is sending too much (a rate limit or throttle): HTTP 429, gRPC
    /// `RESOURCE_EXHAUSTED`.
    Throttled,
    /// The call ran out of time: HTTP 504, gRPC `DEADLINE_EXCEEDED`.
    DeadlineExceeded,
}

impl RejectionKind {
    const fn name(self) -> &'static str {
        match self {
            RejectionKind::Unavailable => "unavailable",
            RejectionKind::Throttled => "throttled",
            RejectionKind::DeadlineExceeded => "deadline-exceeded",
        }
    }

    const fn what(self) -> &'static str {
        match self {
            RejectionKind::Unavailable => "service unavailable",
            RejectionKind::Throttled => "too many requests",
            RejectionKind::DeadlineExceeded => "request deadline exceeded",
        }
    }
}

/// A refusal by a resilience layer, with the delay after which the caller may try
/// again when it is known.
///
/// [`Rejection::of`] finds one anywhere in an error's source chain: an error that
/// implements [`Reject`] (every refusal of this crate's layers), a `Rejection` itself
/// (so a custom layer can return one to get the same responses), and, with the `http`
/// feature, the errors of tower's timeout and load-shedding layers.
///
/// ```
/// use std::time::Duration;
/// use tower_fortify::guard::{Rejection, RejectionKind};
///
/// let mine: tower_fortify::BoxError =
///     Box::new(Rejection::new(RejectionKind::Throttled).retry_after(Duration::from_secs(2)));
/// let r = Rejection::of(mine.as_ref()).unwrap();
/// assert_eq!(r.kind(), RejectionKind::Throttled);
/// assert_eq!(r.retry_after_hint(), Some(Duration::from_secs(2)));
/// assert_eq!(r.message(), "throttled: too many requests; retry after 2000 ms\n");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    retry_after: Option<Duration>,
    reason: &'static str,
    what: &'static str,
}

impl Rejection {
    /// A rejection of `kind` without a delay.
    pub const fn new(kind: RejectionKind) -> Self {
        Self {
            kind,
            retry_after: None,
            reason: kind.name(),
            what: kind.what(),
        }
    }

    /// This rejection, with `reason` as its short, stable name (kebab-case, such as
    /// `"circuit-open"`): the value of the `x-fortify-rejected` header
    /// ([`REJECTED_HEADER`](crate::http::REJECTED_HEADER)) and the start of the
    /// response body.
    pub const fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }

    /// This rejection, described in a few words for a person (`"circuit breaker
    /// open"`): the rest of [`message`](Self::message). The default is the kind's
    /// (`"service unavailable"`).
    pub const fn with_description(mut self, what: &'static str) -> Self {
        self.what = what;
        self
    }

    /// Which layer refused and why: `circuit-open`, `bulkhead-full`, `queue-timeout`,
    /// `rate-limited`, `no-healthy-backend`, `deadline-exceeded`, `attempt-timeout`,
    /// `load-shed`, or the kind's name (`unavailable`, `throttled`) for others.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }

    /// A one-line description for a response body: the reason, what it means, and
    /// when to come back.
    pub fn message(&self) -> String {
        match self.retry_after {
            Some(d) => format!(
                "{}: {}; retry after {}\n",
                self.reason,
                self.what,
                crate::observe::Ms(d)
            ),
            None => format!("{}: {}\n", self.reason, self.what),
        }
    }

    /// This rejection, telling the caller to come back after `delay`.
    pub const fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// This rejection, telling the caller to come back after `delay` if it is known.
    pub const fn retry_after_opt(mut self, delay: Option<Duration>) -> Self {
        self.retry_after = delay;
        self
    }

    /// What kind of refusal it is.
    pub const fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// When the caller may try again, if known.
    pub const fn retry_after_hint(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The rejection `err` stands for: the first error in its source chain that is a
    /// [`Rejection`], implements [`Reject`] (an open circuit breaker, a full bulkhead,
    /// a rate limit, a router with no healthy backend, a timeout or a deadline), or,
    /// with the `http` feature, is a `tower::timeout::error::Elapsed` (deadline) or a
    /// `tower::load_shed::error::Overloaded` (unavailable). `None` for any other
    /// error (an application failure, which servers answer with a plain 500 /
    /// `INTERNAL`).
    ///
    /// This is the one place that recognises a refusal; see the
    /// [module docs](crate::guard#recognising-a-rejection-behind-a-boxerror) for how.
    pub fn of(err: &(dyn StdError + 'static)) -> Option<Self> {
        let mut current = Some(err);
        while let Some(e) = current {
            if let Some(r) = e.downcast_ref::<Rejection>() {
                return Some(*r);
            }
            #[cfg(feature = "http")]
            if e.is::<tower::timeout::error::Elapsed>() {
                return Some(Self::new(RejectionKind::DeadlineExceeded));
            }
            #[cfg(feature = "http")]
            if e.is::<tower::load_shed::error::Overloaded>() {
                return Some(
                    Self::new(RejectionKind::Unavailable)
                        .with_reason("load-shed")
                        .with_description("load shed"),
                );
            }
            // Asking for the source first is what makes a `Reject` type known (its
            // `source` registers it); only then is the registry asked.
            current = e.source();
            if let Some(r) = registered(e) {
                return Some(r);
            }
        }
        None
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RejectionKind::Unavailable => f.write_str("service unavailable")?,
            RejectionKind::Throttled => f.write_str("too many requests")?,
            RejectionKind::DeadlineExceeded => f.write_str("deadline exceeded")?,
        }
        if let Some(d) = self.retry_after {
            write!(f, "; retry after {d:?}")?;
        }
        Ok(())
    }
}

impl StdError for Rejection {}

/// An error that stands for a refusal by a layer: what it means on the wire.
///
/// Each of this crate's layers implements it for its refusals in its own `error.rs`
/// (`CircuitOpen`, `BulkheadFull`, `RateLimited`, `NoHealthyBackend`, the timeouts'
/// `Elapsed` and `DeadlineExceeded`), and makes the type known to
/// [`Rejection::of`] with a [`Registration`] from its `source()`; the protocol floor
/// (`axum`, `grpc`) turns what `Rejection::of` finds into a response or a status,
/// without knowing any layer.
pub trait Reject: StdError + 'static {
    /// What this refusal means for the caller.
    fn rejection(&self) -> Rejection;
}

type Recognise = fn(&(dyn StdError + 'static)) -> Option<Rejection>;

/// How many [`Reject`] types can be registered; a registration past it is ignored
/// (this crate uses six).
const CAPACITY: usize = 32;

static KNOWN: [OnceLock<Recognise>; CAPACITY] = [const { OnceLock::new() }; CAPACITY];
static TAKEN: AtomicUsize = AtomicUsize::new(0);

fn recognise<T: Reject>(e: &(dyn StdError + 'static)) -> Option<Rejection> {
    e.downcast_ref::<T>().map(Reject::rejection)
}

fn registered(e: &(dyn StdError + 'static)) -> Option<Rejection> {
    let taken = TAKEN.load(Ordering::Acquire).min(CAPACITY);
    KNOWN[..taken]
        .iter()
        .filter_map(OnceLock::get)
        .find_map(|recognise| recognise(e))
}

/// Makes one [`Reject`] type known to [`Rejection::of`]: a `static` beside the type,
/// registered from the type's [`Error::source`](std::error::Error::source).
///
/// ```
/// use std::fmt;
/// use tower_fortify::guard::{Registration, Reject, Rejection, RejectionKind};
///
/// #[derive(Debug)]
/// struct QuotaSpent;
///
/// static QUOTA_SPENT: Registration = Registration::of::<QuotaSpent>();
///
/// impl fmt::Display for QuotaSpent {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         f.write_str("quota spent")
///     }
/// }
///
/// impl std::error::Error for QuotaSpent {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         QUOTA_SPENT.register();
///         None
///     }
/// }
///
/// impl Reject for QuotaSpent {
///     fn rejection(&self) -> Rejection {
///         Rejection::new(RejectionKind::Throttled).with_reason("quota-spent")
///     }
/// }
///
/// let err: tower_fortify::BoxError = Box::new(QuotaSpent);
/// assert_eq!(Rejection::of(err.as_ref()).unwrap().reason(), "quota-spent");
/// ```
pub struct Registration {
    once: Once,
    recognise: Recognise,
}

impl Registration {
    /// The registration of `T`, to keep in a `static`.
    pub const fn of<T: Reject>() -> Self {
        Self {
            once: Once::new(),
            recognise: recognise::<T>,
        }
    }

    /// Makes the type known to [`Rejection::of`]; after the first call, one atomic
    /// load.
    #[inline]
    pub fn register(&'static self) {
        self.once.call_once(|| {
            let slot = TAKEN.fetch_add(1, Ordering::AcqRel);
            if let Some(slot) = KNOWN.get(slot) {
                let _ = slot.set(self.recognise);
            }
        });
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("registered", &self.once.is_completed())
            .finish()
    }
}
