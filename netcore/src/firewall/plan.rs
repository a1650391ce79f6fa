//! What to send to nft: `plan(desired, current)` is a pure function from the desired elements
//! and what is known to be applied to one atomic batch of commands.

use std::borrow::Cow;
use std::collections::BTreeSet;

use nftables::schema::{self, NfCmd, NfListObject, NfObject, Nftables};
use nftables::types::NfFamily;

use super::ruleset::{Elem, Elements, SetId, TABLE, skeleton, table};
use super::state::ForwardDrop;

/// One nft transaction: every command is applied or none is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The commands, in order.
    pub cmds: Vec<NfCmd<'static>>,
}

impl Batch {
    /// Whether there is nothing to do (no nft call needed).
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// The batch as the document `nft -j -f -` reads.
    pub fn to_nftables(&self) -> Nftables<'static> {
        Nftables {
            objects: Cow::Owned(self.cmds.iter().cloned().map(NfObject::CmdObject).collect()),
        }
    }

    /// How many rules the batch adds (the figure that must not grow with ports).
    pub fn rules_added(&self) -> usize {
        self.cmds
            .iter()
            .filter(|c| matches!(c, NfCmd::Add(NfListObject::Rule(_))))
            .count()
    }

    /// How many set and map elements the batch adds.
    pub fn elements_added(&self) -> usize {
        self.cmds
            .iter()
            .map(|c| match c {
                NfCmd::Add(NfListObject::Element(e)) => e.elem.len(),
                _ => 0,
            })
            .sum()
    }
}

/// Plans the batch that takes the kernel from `current` to `desired`.
///
/// With `current` unknown (`None`: a fresh start, or after a failed apply) the batch replaces
/// both of berth's tables whole: that removes stale rules and restores missing ones in one
/// transaction and never touches another table. With `current` known, only the elements that
/// differ are deleted and added, so the batch's size does not depend on how many ports exist.
pub fn plan(desired: &Elements, current: Option<&Elements>, drop: ForwardDrop) -> Batch {
    match current {
        None => full(desired, drop),
        Some(current) => incremental(desired, current),
    }
}

/// Replaces berth's tables with the skeleton (dropping forwarded traffic of the families in
/// `drop`) and `desired`'s elements.
pub fn full(desired: &Elements, drop: ForwardDrop) -> Batch {
    let mut cmds = remove_all().cmds;
    cmds.extend(skeleton(drop).into_iter().map(NfCmd::Add));
    for (set, elems) in desired {
        if let Some(e) = element(*set, elems.iter(), true) {
            cmds.push(NfCmd::Add(e));
        }
    }
    Batch { cmds }
}

/// Deletes both of berth's tables, whether or not they exist (`add` first makes the delete
/// idempotent within the transaction).
pub fn remove_all() -> Batch {
    let mut cmds = Vec::new();
    for family in [NfFamily::INet, NfFamily::Bridge] {
        cmds.push(NfCmd::Add(table(family)));
        cmds.push(NfCmd::Delete(table(family)));
    }
    Batch { cmds }
}

/// Deletes the elements `current` has and `desired` lacks, then adds the reverse. A map
/// element whose value changed is deleted and re-added in the same transaction.
pub fn incremental(desired: &Elements, current: &Elements) -> Batch {
    let empty = BTreeSet::new();
    let mut removed = Elements::new();
    let mut added = Elements::new();
    for set in SetId::ALL {
        let want = desired.get(&set).unwrap_or(&empty);
        let have = current.get(&set).unwrap_or(&empty);
        removed.insert(set, have.difference(want).cloned().collect());
        added.insert(set, want.difference(have).cloned().collect());
    }
    changes(&removed, &added)
}

/// One transaction that deletes `removed` and then adds `added` (as [`super::ruleset::element_changes`]
/// returns them).
pub fn changes(removed: &Elements, added: &Elements) -> Batch {
    let mut cmds = Vec::new();
    for (set, elems) in removed {
        if let Some(e) = element(*set, elems.iter(), false) {
            cmds.push(NfCmd::Delete(e));
        }
    }
    for (set, elems) in added {
        if let Some(e) = element(*set, elems.iter(), true) {
            cmds.push(NfCmd::Add(e));
        }
    }
    Batch { cmds }
}

fn element<'e>(
    set: SetId,
    elems: impl Iterator<Item = &'e Elem>,
    with_value: bool,
) -> Option<NfListObject<'static>> {
    let elem: Vec<_> = elems.map(|e| e.to_expr(set, with_value)).collect();
    if elem.is_empty() {
        return None;
    }
    Some(NfListObject::Element(schema::Element {
        family: set.family(),
        table: TABLE.into(),
        name: set.name().into(),
        elem: Cow::Owned(elem),
    }))
}
