//! Instance names as 4-byte ids, for futures that carry a name to their error.
//!
//! A response future that holds an `Arc<str>` is 16 bytes larger and costs two atomic
//! operations per call, although it needs the name only when it fails. A
//! [`NameId`] is a `Copy` index into one process-wide table of the names instances
//! were given; the name is looked up on the failure path only.
//!
//! Bounded: the table keeps at most [`MAX_NAMES`] distinct names (an instance's name
//! is interned once, when it is built, and equal names share an entry). Past the
//! bound a name is not kept: its instance reports no name in its errors (its logs and
//! events, which do not go through this table, still have it), and a WARN line says
//! so once.

use std::sync::{Arc, PoisonError, RwLock};

/// At most this many distinct names are kept.
pub(crate) const MAX_NAMES: usize = 4096;

static NAMES: RwLock<Vec<Arc<str>>> = RwLock::new(Vec::new());

/// A name in the table, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NameId(u32);

impl NameId {
    /// No name.
    pub(crate) const NONE: NameId = NameId(0);

    /// The id of `name`, adding it to the table if it is not there.
    pub(crate) fn intern(name: &str) -> NameId {
        let find = |names: &[Arc<str>]| names.iter().position(|n| **n == *name);
        {
            let names = NAMES.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = find(&names) {
                return NameId(i as u32 + 1);
            }
        }
        let mut names = NAMES.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = find(&names) {
            return NameId(i as u32 + 1);
        }
        if names.len() >= MAX_NAMES {
            if names.len() == MAX_NAMES {
                tracing::warn!(
                    target: "tower_fortify",
                    name,
                    max = MAX_NAMES,
                    "too many distinct instance names: errors of instances named from now on carry no name"
                );
                // One entry past the bound marks the warning as given; never looked up.
                names.push(Arc::from(""));
            }
            return NameId::NONE;
        }
        names.push(Arc::from(name));
        NameId(names.len() as u32)
    }

    /// The name, if any (takes a read lock: for failure paths).
    #[cold]
    pub(crate) fn get(self) -> Option<Arc<str>> {
        let i = (self.0 as usize).checked_sub(1)?;
        let names = NAMES.read().unwrap_or_else(PoisonError::into_inner);
        names.get(i).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_share_an_id_and_come_back() {
        let a = NameId::intern("interned-test/a");
        let b = NameId::intern("interned-test/b");
        assert_ne!(a, b);
        assert_eq!(NameId::intern("interned-test/a"), a);
        assert_eq!(a.get().as_deref(), Some("interned-test/a"));
        assert_eq!(b.get().as_deref(), Some("interned-test/b"));
        assert_eq!(NameId::NONE.get(), None);
    }
}
