//! Helpers shared by berth's benchmarks; the benchmarks themselves are under benches/benches and
//! the comparison scripts beside them.
