//! The router's unit tests: the router driven in memory by the
//! [`Harness`](super::harness::Harness), without Redis and without threads,
//! in plain `cargo test`. Each mirrors the scenario of a test over sockets
//! in `tests/` (named in its doc), so a failure here points at the router
//! and one there at everything around it.

mod cluster;
mod delivery;
mod replay;
