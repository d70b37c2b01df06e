//! The breaker's state word: phase, mode, probes admitted and generation, packed in
//! one `u64` so that the success path reads one atomic and tests one mask.

use crate::observe::{CircuitState, Mode};

// The state word: bits 0-1 the phase, bits 2-3 the mode, bits 16-31 the probes
// admitted in this half-open period, bits 32-63 the generation. Closed + Automatic is
// all zero in the low bits, so the success path tests one mask.
pub(super) const PHASE_MASK: u64 = 0b11;
const MODE_SHIFT: u32 = 2;
pub(super) const MODE_MASK: u64 = 0b11 << MODE_SHIFT;
pub(super) const LOW_MASK: u64 = PHASE_MASK | MODE_MASK;
const PROBE_SHIFT: u32 = 16;
pub(super) const PROBE_ONE: u64 = 1 << PROBE_SHIFT;
const PROBE_MASK: u64 = 0xFFFF << PROBE_SHIFT;
pub(super) const GEN_SHIFT: u32 = 32;

const CLOSED: u64 = 0;
pub(super) const OPEN: u64 = 1;
pub(super) const HALF_OPEN: u64 = 2;

#[inline]
pub(super) fn generation(w: u64) -> u32 {
    (w >> GEN_SHIFT) as u32
}

#[inline]
pub(super) fn probes(w: u64) -> u32 {
    ((w & PROBE_MASK) >> PROBE_SHIFT) as u32
}

pub(super) fn phase(w: u64) -> CircuitState {
    match w & PHASE_MASK {
        OPEN => CircuitState::Open,
        HALF_OPEN => CircuitState::HalfOpen,
        _ => CircuitState::Closed,
    }
}

pub(super) fn mode(w: u64) -> Mode {
    match (w & MODE_MASK) >> MODE_SHIFT {
        1 => Mode::Disabled,
        2 => Mode::ForcedOpen,
        3 => Mode::MetricsOnly,
        _ => Mode::Automatic,
    }
}

pub(super) const fn mode_bits(m: Mode) -> u64 {
    (match m {
        Mode::Automatic => 0,
        Mode::Disabled => 1,
        Mode::ForcedOpen => 2,
        Mode::MetricsOnly => 3,
    }) << MODE_SHIFT
}

fn phase_bits(s: CircuitState) -> u64 {
    match s {
        CircuitState::Closed => CLOSED,
        CircuitState::Open => OPEN,
        CircuitState::HalfOpen => HALF_OPEN,
    }
}

pub(super) fn word(s: CircuitState, m: Mode, generation: u32) -> u64 {
    ((generation as u64) << GEN_SHIFT) | mode_bits(m) | phase_bits(s)
}
