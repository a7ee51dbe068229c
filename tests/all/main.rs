//! End-to-end tests of Nexus, driven the way users drive it: the `nexus`
//! binary (as a child process) and the `nexus_host` library API.
//!
//! Shared vectors live in `tests/vectors/`: `NAME.js`, `NAME.input.json` and
//! `NAME.expected.json`, the last either `{"output": JSON, "logs": [...]}` or
//! `{"error": {"kind": ..., ...}}` (fields as in `support::check_error`);
//! `"node_differs": "why"` exempts a vector from the Node parity test.

mod bench;
mod cache;
mod cli;
mod deploy;
mod faults;
mod isolation;
mod layers;
mod limits;
mod monitoring;
mod node;
mod prepared;
mod seed;
mod serve;
mod settings;
mod snapshots;
mod support;
mod vectors;
mod world;
