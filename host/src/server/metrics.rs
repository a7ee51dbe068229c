//! `GET /metrics`: one `prometheus::Registry`. The runtime's figures are
//! read at scrape time from its own counters by [`RuntimeCollector`], so
//! nothing is counted twice; the server counts only its HTTP requests.

use std::sync::{Arc, OnceLock};

use nexus_host::{
    Artifact, Discard, Durations, HandlerFigures, Handlers, InvocationPath, Op, TierStats, OTHER,
};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// The names `nexus_invocations_total` and
/// `nexus_invocation_duration_seconds` had before 0.2, still exported
/// (the same samples) until 0.3 so dashboards and alerts can move over.
const DEPRECATED_INVOCATIONS: &str = "nexus_executions_total";
const DEPRECATED_DURATION: &str = "nexus_execution_duration_seconds";

/// The families the collector reports: name, type, help, labels.
const FAMILIES: &[(&str, MetricType, &str, &[&str])] = &[
    (
        "nexus_cache_hits_total",
        MetricType::COUNTER,
        "Lookups a cache tier answered: memory, disk (the cache directory) or seed (the read-only seed directory).",
        &["artifact", "tier"],
    ),
    (
        "nexus_cache_misses_total",
        MetricType::COUNTER,
        "Lookups no tier answered: the artifact was compiled.",
        &["artifact"],
    ),
    (
        "nexus_cache_hit_rate",
        MetricType::GAUGE,
        "Share of lookups that compiled nothing: hits / (hits + misses).",
        &["artifact"],
    ),
    (
        "nexus_cache_bytes",
        MetricType::GAUGE,
        "Bytes a cache tier holds.",
        &["artifact", "tier"],
    ),
    (
        "nexus_cache_entries",
        MetricType::GAUGE,
        "Entries a cache tier holds.",
        &["artifact", "tier"],
    ),
    (
        "nexus_cache_capacity_bytes",
        MetricType::GAUGE,
        "A cache tier's bound, shared by both artifacts.",
        &["tier"],
    ),
    (
        "nexus_cache_evictions_total",
        MetricType::COUNTER,
        "Entries evicted to stay within a tier's bound.",
        &["artifact", "tier"],
    ),
    (
        "nexus_cache_corrupt_total",
        MetricType::COUNTER,
        "Damaged cache files found and recompiled (removed; in the read-only seed, ignored).",
        &["artifact"],
    ),
    (
        "nexus_cache_disk_errors_total",
        MetricType::COUNTER,
        "Cache directory operations that failed.",
        &["op"],
    ),
    (
        "nexus_compile_duration_seconds",
        MetricType::HISTOGRAM,
        "Time to compile an artifact that no tier had.",
        &["artifact"],
    ),
    (
        "nexus_cache_rebuild_seconds_total",
        MetricType::COUNTER,
        "Seconds spent compiling artifacts no tier had: the work the cache did not save.",
        &["artifact"],
    ),
    (
        "nexus_invocations_total",
        MetricType::COUNTER,
        "Invocations by outcome: ok, or the error's kind.",
        &["outcome"],
    ),
    (
        "nexus_invocation_duration_seconds",
        MetricType::HISTOGRAM,
        "Time an invocation spent in its instance, whatever its outcome.",
        &[],
    ),
    (
        DEPRECATED_INVOCATIONS,
        MetricType::COUNTER,
        "Deprecated, removed in Nexus 0.3: the same as nexus_invocations_total.",
        &["outcome"],
    ),
    (
        DEPRECATED_DURATION,
        MetricType::HISTOGRAM,
        "Deprecated, removed in Nexus 0.3: the same as nexus_invocation_duration_seconds.",
        &[],
    ),
    (
        "nexus_instances_active",
        MetricType::GAUGE,
        "Instances running an invocation or a compile now, or answered and being reset for the next.",
        &[],
    ),
    (
        "nexus_instances_kept",
        MetricType::GAUGE,
        "Instances idle now, kept for further calls of handlers under isolation=reuse (at most reuse_max_instances).",
        &[],
    ),
    (
        "nexus_instance_reuses_total",
        MetricType::COUNTER,
        "Calls that ran in an instance an earlier call of the same handler version used (isolation=reuse).",
        &[],
    ),
    (
        "nexus_instances_discarded_total",
        MetricType::COUNTER,
        "Instances kept for reuse, then dropped: after a failed call (error), at reuse_max_calls (max_calls), past reuse_max_memory_percent (memory), idle for reuse_idle_ms (idle), with reuse_max_instances idle already (full), or their handler replaced or removed (replaced).",
        &["reason"],
    ),
    (
        "nexus_handlers",
        MetricType::GAUGE,
        "Registered handlers by the path their calls take.",
        &["path"],
    ),
    (
        "nexus_snapshots_total",
        MetricType::COUNTER,
        "Per-handler snapshot builds by outcome (built, loaded from the cache, refused under auto, failed), and snapshots unloaded to keep within max_snapshots.",
        &["outcome"],
    ),
    (
        "nexus_slot_reset",
        MetricType::GAUGE,
        "How pool slots are reset between instances: 1 for the mode in use, scan (the pages the last instance dirtied) or full (every page; chosen where the host has swap, which the scan misses).",
        &["mode"],
    ),
    (
        "nexus_invocation_timeout_seconds",
        MetricType::GAUGE,
        "The timeout setting: the longest any call may run (a call's timeout_ms may only shorten it).",
        &[],
    ),
    (
        "nexus_handler_invocations_total",
        MetricType::COUNTER,
        "A handler's invocations by outcome: ok, or the error's kind. Handlers past max_handler_series count together as handler=\"_other\".",
        &["handler", "outcome"],
    ),
    (
        "nexus_handler_duration_seconds",
        MetricType::HISTOGRAM,
        "Time a handler's invocations spent in their instance, whatever their outcome.",
        &["handler"],
    ),
    (
        "nexus_handler_console_lines_total",
        MetricType::COUNTER,
        "Console lines a handler wrote, logged or not.",
        &["handler"],
    ),
    (
        "nexus_handler_console_lines_suppressed_total",
        MetricType::COUNTER,
        "A handler's console lines kept out of the log: over console_lines_per_second (rate_limit), or past one call's 10000 lines or 1 MiB (call_cap).",
        &["handler", "reason"],
    ),
    (
        "nexus_handler_info",
        MetricType::GAUGE,
        "1 for each handler with series of its own: the path its calls take (plain or prepared) and its snapshot's state.",
        &["handler", "path", "snapshot"],
    ),
    (
        "nexus_handler_series_folded_total",
        MetricType::COUNTER,
        "Handlers registered past max_handler_series, counted under handler=\"_other\": above 0, the bound is too low for the handlers in use.",
        &[],
    ),
    (
        "nexus_registry_reloads_total",
        MetricType::COUNTER,
        "Changes to the handlers directory applied (ok: a handler registered, replaced or removed) or not (error: it did not compile; the previous version serves).",
        &["result"],
    ),
];

/// Reads the runtime's figures at scrape time.
struct RuntimeCollector {
    handlers: Arc<OnceLock<Arc<Handlers>>>,
    descs: Vec<Desc>,
}

impl RuntimeCollector {
    fn new(handlers: Arc<OnceLock<Arc<Handlers>>>) -> prometheus::Result<Self> {
        let descs = FAMILIES
            .iter()
            .map(|(name, _, help, labels)| {
                let labels = labels.iter().map(|l| l.to_string()).collect();
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    labels,
                    Default::default(),
                )
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(Self { handlers, descs })
    }
}

/// One sample: labels and a value.
enum Value<'a> {
    Counter(u64),
    /// A counter of seconds.
    Seconds(f64),
    Gauge(f64),
    Histogram(&'a Durations),
}

fn sample(labels: &[(&str, &str)], value: Value<'_>) -> proto::Metric {
    let mut metric = proto::Metric::default();
    metric.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect(),
    );
    match value {
        Value::Counter(n) => {
            let mut c = proto::Counter::default();
            c.set_value(n as f64);
            metric.set_counter(c);
        }
        Value::Seconds(seconds) => {
            let mut c = proto::Counter::default();
            c.set_value(seconds);
            metric.set_counter(c);
        }
        Value::Gauge(v) => {
            let mut g = proto::Gauge::default();
            g.set_value(v);
            metric.set_gauge(g);
        }
        Value::Histogram(d) => {
            let mut h = proto::Histogram::default();
            h.set_sample_count(d.count);
            h.set_sample_sum(d.sum_seconds);
            h.set_bucket(
                d.buckets
                    .iter()
                    .map(|(bound, count)| {
                        let mut b = proto::Bucket::default();
                        b.set_upper_bound(*bound);
                        b.set_cumulative_count(*count);
                        b
                    })
                    .collect(),
            );
            metric.set_histogram(h);
        }
    }
    metric
}

impl Collector for RuntimeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(handlers) = self.handlers.get() else {
            return Vec::new();
        };
        let runtime = handlers.runtime();
        let cache = runtime.cache();
        let counters = runtime.counters();
        let mut samples: Vec<Vec<proto::Metric>> = vec![Vec::new(); FAMILIES.len()];
        let mut add = |family: &str, labels: &[(&str, &str)], value: Value<'_>| {
            let index = FAMILIES
                .iter()
                .position(|f| f.0 == family)
                .expect("a known family");
            samples[index].push(sample(labels, value));
        };
        for kind in [Artifact::Bytecode, Artifact::Component] {
            let artifact = kind.as_str();
            let mut tiers: Vec<(&str, TierStats)> = vec![
                ("memory", cache.memory_stats(kind)),
                ("disk", cache.disk_stats(kind)),
            ];
            tiers.extend(cache.seed_stats(kind).map(|seed| ("seed", seed)));
            for (tier, t) in tiers {
                let labels = [("artifact", artifact), ("tier", tier)];
                add("nexus_cache_hits_total", &labels, Value::Counter(t.hits));
                add("nexus_cache_bytes", &labels, Value::Gauge(t.bytes as f64));
                add(
                    "nexus_cache_entries",
                    &labels,
                    Value::Gauge(t.entries as f64),
                );
                add(
                    "nexus_cache_evictions_total",
                    &labels,
                    Value::Counter(t.evictions),
                );
            }
            let labels = [("artifact", artifact)];
            add(
                "nexus_cache_misses_total",
                &labels,
                Value::Counter(cache.compiles(kind)),
            );
            add(
                "nexus_cache_hit_rate",
                &labels,
                Value::Gauge(cache.hit_rate(kind)),
            );
            add(
                "nexus_cache_corrupt_total",
                &labels,
                Value::Counter(cache.corrupt(kind)),
            );
        }
        for (tier, t) in [
            ("memory", cache.memory_stats(Artifact::Bytecode)),
            ("disk", cache.disk_stats(Artifact::Bytecode)),
        ] {
            add(
                "nexus_cache_capacity_bytes",
                &[("tier", tier)],
                Value::Gauge(t.capacity_bytes as f64),
            );
        }
        for op in Op::ALL {
            add(
                "nexus_cache_disk_errors_total",
                &[("op", op.as_str())],
                Value::Counter(cache.disk_errors(op)),
            );
        }
        for (artifact, durations) in &counters.compile_seconds {
            let labels = [("artifact", *artifact)];
            add(
                "nexus_compile_duration_seconds",
                &labels,
                Value::Histogram(durations),
            );
            add(
                "nexus_cache_rebuild_seconds_total",
                &labels,
                Value::Seconds(durations.sum_seconds),
            );
        }
        for family in ["nexus_invocations_total", DEPRECATED_INVOCATIONS] {
            for (outcome, n) in &counters.invocations {
                add(family, &[("outcome", outcome)], Value::Counter(*n));
            }
        }
        for family in ["nexus_invocation_duration_seconds", DEPRECATED_DURATION] {
            add(family, &[], Value::Histogram(&counters.invocation_seconds));
        }
        add(
            "nexus_instances_active",
            &[],
            Value::Gauge(runtime.active_instances().into()),
        );
        let reuse = runtime.reuse_counts();
        add("nexus_instances_kept", &[], Value::Gauge(reuse.idle as f64));
        add(
            "nexus_instance_reuses_total",
            &[],
            Value::Counter(reuse.reused_calls),
        );
        for (reason, n) in Discard::ALL.iter().zip(reuse.discarded) {
            add(
                "nexus_instances_discarded_total",
                &[("reason", reason.as_str())],
                Value::Counter(n),
            );
        }
        let list = handlers.list();
        let prepared = list
            .iter()
            .filter(|h| h.path() == InvocationPath::Prepared)
            .count();
        for (path, count) in [("plain", list.len() - prepared), ("prepared", prepared)] {
            add(
                "nexus_handlers",
                &[("path", path)],
                Value::Gauge(count as f64),
            );
        }
        let counts = handlers.snapshot_counts();
        for (outcome, n) in [
            ("built", counts.built),
            ("loaded", counts.loaded),
            ("refused", counts.refused),
            ("failed", counts.failed),
            ("unloaded", counts.unloaded),
        ] {
            add(
                "nexus_snapshots_total",
                &[("outcome", outcome)],
                Value::Counter(n),
            );
        }
        add(
            "nexus_slot_reset",
            &[("mode", runtime.slot_reset().as_str())],
            Value::Gauge(1.0),
        );
        add(
            "nexus_invocation_timeout_seconds",
            &[],
            Value::Gauge(runtime.config().timeout.as_secs_f64()),
        );
        for handler in list.iter().filter(|h| h.has_own_series()) {
            let snapshot = handler.snapshot();
            add(
                "nexus_handler_info",
                &[
                    ("handler", &handler.name),
                    ("path", handler.path().as_str()),
                    ("snapshot", snapshot.as_str()),
                ],
                Value::Gauge(1.0),
            );
            handler_samples(&mut add, &handler.name, &handler.figures());
        }
        handler_samples(&mut add, OTHER, &handlers.other_figures());
        add(
            "nexus_handler_series_folded_total",
            &[],
            Value::Counter(handlers.folded_series()),
        );
        let reloads = handlers.reload_counts();
        for (result, n) in [("ok", reloads.ok), ("error", reloads.error)] {
            add(
                "nexus_registry_reloads_total",
                &[("result", result)],
                Value::Counter(n),
            );
        }

        FAMILIES
            .iter()
            .zip(samples)
            .map(|((name, kind, help, _), metrics)| {
                let mut family = MetricFamily::default();
                family.set_name(name.to_string());
                family.set_help(help.to_string());
                family.set_field_type(*kind);
                family.set_metric(metrics);
                family
            })
            .collect()
    }
}

/// One handler's samples (or `_other`'s): its outcomes (`ok` always, each
/// error kind once it happened), durations and console lines.
fn handler_samples(
    add: &mut impl FnMut(&str, &[(&str, &str)], Value<'_>),
    handler: &str,
    figures: &HandlerFigures,
) {
    for (outcome, n) in &figures.invocations {
        if *n > 0 || *outcome == "ok" {
            let labels = [("handler", handler), ("outcome", outcome)];
            add(
                "nexus_handler_invocations_total",
                &labels,
                Value::Counter(*n),
            );
        }
    }
    add(
        "nexus_handler_duration_seconds",
        &[("handler", handler)],
        Value::Histogram(&figures.seconds),
    );
    let console = figures.console;
    add(
        "nexus_handler_console_lines_total",
        &[("handler", handler)],
        Value::Counter(console.lines),
    );
    for (reason, n) in [
        ("rate_limit", console.suppressed),
        ("call_cap", console.dropped),
    ] {
        add(
            "nexus_handler_console_lines_suppressed_total",
            &[("handler", handler), ("reason", reason)],
            Value::Counter(n),
        );
    }
}

/// The server's registry and its own HTTP counters.
pub(crate) struct Exporter {
    registry: Registry,
    pub requests: IntCounterVec,
    pub durations: HistogramVec,
}

impl Exporter {
    pub fn new(handlers: Arc<OnceLock<Arc<Handlers>>>) -> prometheus::Result<Self> {
        let registry = Registry::new();
        registry.register(Box::new(RuntimeCollector::new(handlers)?))?;
        let requests = IntCounterVec::new(
            Opts::new(
                "nexus_http_requests_total",
                "HTTP requests answered, by route and status.",
            ),
            &["route", "status"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "nexus_http_request_duration_seconds",
                "Time to answer an HTTP request, by route.",
            )
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        Ok(Self {
            registry,
            requests,
            durations,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding the metrics failed: {e}\n"))
    }
}
