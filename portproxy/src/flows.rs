//! A bounded table of UDP flows with an idle timeout.
//!
//! Pure data structure: time is a parameter (milliseconds on any monotonic clock), so expiry and
//! eviction are tested without sleeping. The UDP forwarder owns one table per listening socket and
//! is its only user, so no lock is taken per packet.

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
struct Entry<V> {
    value: V,
    last_seen: u64,
}

/// Client address -> flow state, at most `capacity` entries.
#[derive(Debug)]
pub struct FlowTable<K, V> {
    entries: HashMap<K, Entry<V>>,
    capacity: usize,
    idle_ms: u64,
}

impl<K: Hash + Eq + Clone, V> FlowTable<K, V> {
    /// A table holding at most `capacity` flows (at least 1), each dropped after `idle_ms` of
    /// silence.
    pub fn new(capacity: usize, idle_ms: u64) -> Self {
        FlowTable {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            idle_ms,
        }
    }

    /// Number of live flows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no flow is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The flow for `key`, marking it as seen at `now`.
    pub fn touch(&mut self, key: &K, now: u64) -> Option<&mut V> {
        let e = self.entries.get_mut(key)?;
        e.last_seen = e.last_seen.max(now);
        Some(&mut e.value)
    }

    /// Inserts a new flow seen at `now`. When the table is full, the least recently seen flow is
    /// evicted and returned so the caller can close it.
    pub fn insert(&mut self, key: K, value: V, now: u64) -> Option<(K, V)> {
        let mut evicted = None;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                evicted = self.entries.remove(&k).map(|e| (k, e.value));
            }
        }
        self.entries.insert(
            key,
            Entry {
                value,
                last_seen: now,
            },
        );
        evicted
    }

    /// Removes and returns every flow idle for longer than the timeout at `now`. `activity`
    /// reports activity the table did not see itself (replies), as a time on the same clock.
    pub fn expire(&mut self, now: u64, activity: impl Fn(&V) -> u64) -> Vec<(K, V)> {
        let idle = self.idle_ms;
        let dead: Vec<K> = self
            .entries
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.last_seen.max(activity(&e.value))) > idle)
            .map(|(k, _)| k.clone())
            .collect();
        dead.into_iter()
            .filter_map(|k| self.entries.remove(&k).map(|e| (k, e.value)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn idle_flows_expire_and_sending_keeps_alive() {
        let mut t = FlowTable::new(10, 90_000);
        t.insert("a", 1, 0);
        t.insert("b", 2, 0);
        // "a" only sends (no replies): each send touches it.
        for now in (0..200_000).step_by(30_000) {
            assert!(t.touch(&"a", now).is_some());
        }
        let dead = t.expire(200_000, |_| 0);
        assert_eq!(dead, vec![("b", 2)]);
        assert_eq!(t.len(), 1);
        assert!(t.expire(260_000, |_| 0).is_empty());
        assert_eq!(t.expire(290_001, |_| 0), vec![("a", 1)]);
    }

    #[test]
    fn replies_count_as_activity() {
        let mut t = FlowTable::new(10, 1_000);
        t.insert(1u8, 100u64, 0);
        assert!(t.expire(5_000, |v| *v * 45).is_empty()); // reply at 4,500 ms
        assert_eq!(t.expire(5_501, |v| *v * 45).len(), 1);
    }

    #[test]
    fn full_table_evicts_least_recently_seen() {
        let mut t = FlowTable::new(2, 1_000);
        assert!(t.insert("a", 1, 0).is_none());
        assert!(t.insert("b", 2, 1).is_none());
        t.touch(&"a", 2);
        assert_eq!(t.insert("c", 3, 3), Some(("b", 2)));
        assert!(t.touch(&"a", 4).is_some());
        assert!(t.touch(&"c", 4).is_some());
    }

    proptest! {
        #[test]
        fn never_exceeds_capacity(cap in 1usize..20, ops in proptest::collection::vec((0u8..40, 0u64..1000), 0..300)) {
            let mut t = FlowTable::new(cap, 100);
            for (k, now) in ops {
                if t.touch(&k, now).is_none() {
                    t.insert(k, (), now);
                }
                prop_assert!(t.len() <= cap);
            }
        }
    }
}
