//! What the services of one chaos layer share: the rules, the random stream, the
//! runtime switches.

use std::sync::Arc;

use super::handle::Control;
use super::rule::Rule;
use crate::observe::Listeners;
use crate::rng::Rng;

pub(super) struct Shared<Req, Res, E> {
    pub(super) rules: Box<[Rule<Req, Res, E>]>,
    pub(super) rng: Rng,
    pub(super) control: Arc<Control>,
    pub(super) listeners: Listeners,
}
