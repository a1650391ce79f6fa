//! The resolver's answer path allocates nothing per query: a counting allocator around
//! `dns::handle` for names, shared aliases, PTR and the forward decision, after a warm-up
//! query has sized the reused reply buffer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hickory_proto::rr::RecordType;
use netcore::dns::{Outcome, Records, Transport, handle};
use netcore::network::State;
use netcore::network::fixtures::{bridge_network, endpoint};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed straight to the system allocator; the counter is a thread-local
// Cell, which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: as for dealloc, and the new size comes from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn query(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    netcore::dns::fixtures::query(7, name, rtype, edns.then_some(1232))
}

#[test]
fn answering_allocates_nothing_per_query() {
    let mut s = State::default();
    s.networks
        .insert("net".into(), bridge_network("net", false));
    for (i, c) in ["web", "db1", "db2", "asker"].into_iter().enumerate() {
        let ep = endpoint(
            c,
            "net",
            &format!("10.0.0.{}", i + 2),
            Some(&format!("fd00::{}", i + 2)),
            &["pool"],
        );
        s.endpoints.insert(ep.id.clone(), ep);
    }
    let records = Records::build(&s, &["127.0.0.1:53".parse().unwrap()]);
    let cases = [
        query("web", RecordType::A, false),
        query(
            "a-rather-long-container-name-over-32-bytes",
            RecordType::A,
            false,
        ),
        query("pool", RecordType::AAAA, true),
        query("2.0.0.10.in-addr.arpa", RecordType::PTR, false),
        query("example.com", RecordType::A, true),
        query("WEB.net", RecordType::A, false),
    ];
    let mut out = Vec::with_capacity(4096);
    for q in &cases {
        let _ = handle(&records, "asker", q, Transport::Udp, 600, &mut out);
    }
    for (i, q) in cases.iter().enumerate() {
        // Names past 32 bytes spill hickory's inline name buffer: the one allowed allocation.
        let allowed = usize::from(i == 1);
        let before = ALLOCS.with(Cell::get);
        let o = handle(&records, "asker", q, Transport::Udp, 600, &mut out);
        let n = ALLOCS.with(Cell::get) - before;
        assert!(matches!(o, Outcome::Reply | Outcome::Forward(_)));
        assert!(n <= allowed, "case {i}: {n} allocations");
    }
}
