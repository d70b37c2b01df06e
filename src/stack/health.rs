//! How the stack's breakers and router judge a backend's health.

use crate::classify::{Classified, Classify, ClassifyEos, Outcome, ServerHint};

/// The stack's classifier for backend health (the per-backend breakers and the
/// router): the protocol's classifier, except that load shedding without a hint
/// ([`Outcome::Overloaded`] with [`ServerHint::None`]: a `429`, a full queue) counts
/// as a success.
///
/// Why: a backend that sheds load is alive and at its capacity. Taking it out of
/// rotation (a breaker trips, the router ejects it) moves its load onto the others,
/// which then shed more and are taken out in turn: the drill's `overload` scenario
/// falls from the 70 % the backends can serve to under 25 % that way. The retry
/// layer still sees the overload (it backs off and the budget bounds its retries),
/// and a shed with a hint (`Retry-After`, pushback) still holds the backend out for
/// the hinted time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health<C>(pub(crate) C);

impl<C> Health<C> {
    /// The protocol's classifier inside.
    pub fn inner(&self) -> &C {
        &self.0
    }
}

#[inline]
fn judge(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Overloaded(ServerHint::None) => Outcome::Success,
        other => other,
    }
}

impl<Res, E, C: Classify<Res, E>> Classify<Res, E> for Health<C> {
    type Eos = Health<C::Eos>;

    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Classified<Self::Eos> {
        match self.0.classify(result) {
            Classified::Ready(outcome) => Classified::Ready(judge(outcome)),
            Classified::RequiresEos(eos) => Classified::RequiresEos(Health(eos)),
        }
    }
}

impl<C: ClassifyEos> ClassifyEos for Health<C> {
    type Trailers = C::Trailers;

    fn classify_eos(self, trailers: Option<&Self::Trailers>) -> Outcome {
        judge(self.0.classify_eos(trailers))
    }

    fn classify_early_end(self) -> Outcome {
        judge(self.0.classify_early_end())
    }
}
