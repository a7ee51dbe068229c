//! `nexus serve` over HTTP on an ephemeral loopback port: the API, every
//! status of the README's table, metrics, stats, restarts, signals,
//! concurrency and a storm of malformed requests.
//!
//! One module per topic; what they share is here.

mod api;
mod auth;
mod connections;
mod directory;
mod hostile;
mod lifecycle;
mod load;
mod observe;
mod per_handler;
mod reuse;

pub(crate) use std::io::Write;
pub(crate) use std::net::TcpStream;
pub(crate) use std::time::Duration;

pub(crate) use serde_json::{json, Value};

pub(crate) use crate::support::server::{handlers_dir, read_reply, sample, serve, signal, Server};
pub(crate) use crate::support::Rng;

pub(crate) const DOUBLE: &str = "export default (ctx) => ({ twice: ctx.n * 2 })";
pub(crate) const HELLO: &str = "export default (ctx) => ({ message: `Hello, ${ctx.name}!` })";

/// The peak memory the process has had (`VmHWM`), in bytes.
pub(crate) fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}
