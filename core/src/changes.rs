//! What changed in a run's state since the version it was read or saved as, and that
//! version's place in its journal: what a save needs to write a journal delta instead of a
//! whole checkpoint (see [`crate::journal`]).

use crate::model::ActionIdx;

/// The most deltas a chain holds before the next save writes a checkpoint. Reading a version
/// reads its whole chain, so this bounds a load to one checkpoint and this many small objects.
pub(crate) const MAX_DELTAS: u32 = 64;

/// A version's place in its journal: the checkpoint its chain starts from and what the chain
/// holds after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chain {
    /// The checkpoint's version.
    pub(crate) checkpoint: u64,
    /// The checkpoint's size.
    pub(crate) checkpoint_bytes: u64,
    /// Deltas after the checkpoint, up to and including this version.
    pub(crate) deltas: u32,
    /// Their total size.
    pub(crate) delta_bytes: u64,
}

impl Chain {
    /// The chain of a checkpoint just written or read.
    pub(crate) fn checkpoint(version: u64, bytes: usize) -> Self {
        Chain {
            checkpoint: version,
            checkpoint_bytes: bytes as u64,
            deltas: 0,
            delta_bytes: 0,
        }
    }

    /// This chain with one more delta of `bytes`.
    pub(crate) fn then(self, bytes: usize) -> Self {
        Chain {
            deltas: self.deltas + 1,
            delta_bytes: self.delta_bytes + bytes as u64,
            ..self
        }
    }

    /// How large the next delta may be before it should rather be a checkpoint; `None` when
    /// the chain takes no more deltas.
    pub(crate) fn room(&self) -> Option<usize> {
        if self.deltas + 1 >= MAX_DELTAS || self.delta_bytes >= self.checkpoint_bytes {
            return None;
        }
        usize::try_from(self.checkpoint_bytes - self.delta_bytes).ok()
    }
}

/// What changed in a state since the version it was read as or last saved as. Clones carry
/// it along; equality ignores it (two states are equal by their contents).
#[derive(Debug, Clone, Default)]
pub(crate) struct Changes {
    /// The version the changes are relative to and its chain; `None` when unknown (a new
    /// state, one assembled from several versions), so the next save is a checkpoint.
    basis: Option<(u64, Chain)>,
    /// One bit per action changed.
    dirty: Vec<u64>,
    /// Run log entries pushed.
    log_pushed: usize,
    log_replaced: bool,
    vars_replaced: bool,
}

impl PartialEq for Changes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Changes {
    pub(crate) fn action(&mut self, idx: ActionIdx) {
        let (word, bit) = (idx as usize / 64, idx % 64);
        if self.dirty.len() <= word {
            self.dirty.resize(word + 1, 0);
        }
        self.dirty[word] |= 1 << bit;
    }

    pub(crate) fn log_pushed(&mut self) {
        self.log_pushed = self.log_pushed.saturating_add(1);
    }

    pub(crate) fn log_replaced(&mut self) {
        self.log_replaced = true;
    }

    pub(crate) fn vars_replaced(&mut self) {
        self.vars_replaced = true;
    }

    /// The state now is `version`, whose chain is `chain`: nothing has changed since.
    pub(crate) fn settle(&mut self, version: u64, chain: Chain) {
        *self = Changes {
            basis: Some((version, chain)),
            ..Changes::default()
        };
    }

    /// The version the changes are relative to, and its chain.
    pub(crate) fn basis(&self) -> Option<(u64, Chain)> {
        self.basis
    }

    /// The state now holds another version's contents besides its own changes (a merge took
    /// them from `theirs`, read as the newest version): its changes stay (they cover what
    /// differs from `theirs`: the merge refuses actions both sides changed, and took the rest
    /// from `theirs`), the run log counts as rewritten, and the next save builds on `theirs`.
    pub(crate) fn rebase_onto(&mut self, theirs: &Changes) {
        self.basis = theirs.basis;
        self.log_replaced = true;
        self.vars_replaced = true;
    }

    /// How many run log entries were pushed (the newest ones), unless the log was rewritten.
    pub(crate) fn log_entries_added(&self) -> Option<usize> {
        (!self.log_replaced).then_some(self.log_pushed)
    }

    /// Whether the run's variables may have been rewritten wholesale.
    pub(crate) fn vars_rewritten(&self) -> bool {
        self.vars_replaced
    }

    /// The actions changed, in plan order.
    pub(crate) fn dirty(&self) -> impl Iterator<Item = ActionIdx> + '_ {
        self.dirty.iter().enumerate().flat_map(|(word, &bits)| {
            (0..64)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| (word * 64 + bit) as ActionIdx)
        })
    }
}
