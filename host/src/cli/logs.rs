//! The log: `tracing` to stderr, as text for people or as JSON lines for
//! clusters.
//!
//! Invariants: one event is one line, whatever a handler writes (text
//! escapes control characters; JSON escapes them already); in JSON, every
//! field is a top-level key, the fields of the spans the event is in
//! (`nexus serve`'s request span: `request_id`, `method`, `route`,
//! `handler`) included, so a log pipeline filters on them without parsing
//! the message; no key appears twice.

use std::fmt;

use nexus_host::LogFormat;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Logs to stderr, filtered by `default` (an `EnvFilter`; `NEXUS_LOG`
/// overrides), as text or JSON lines.
pub(crate) fn init_tracing(format: LogFormat, default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("NEXUS_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .without_time()
            .with_target(false)
            .fmt_fields(escaped_fields())
            .init(),
    }
}

/// One JSON object a line: `timestamp`, `level`, `target`, then the fields
/// of each span the event is in (outermost first) and the event's own
/// (`message` among them), all at the top level; an event's field a span
/// already has (a console line's `handler`) is left out.
struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":\"");
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        let meta = event.metadata();
        let head = format!(
            "\",\"level\":\"{}\",\"target\":{}",
            meta.level(),
            Value::from(meta.target())
        );
        line.push_str(&head);
        // `JsonFields` keeps each span's fields as a JSON object, formatted
        // once: its members are spliced in as they are.
        let mut spans = String::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let members = extensions
                    .get::<FormattedFields<JsonFields>>()
                    .and_then(|f| {
                        f.fields
                            .strip_prefix('{')?
                            .strip_suffix('}')
                            .map(str::to_owned)
                    });
                if let Some(members) = members.filter(|m| !m.is_empty()) {
                    spans.push(',');
                    spans.push_str(&members);
                }
            }
        }
        line.push_str(&spans);
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        for (name, value) in fields {
            // A key is `"name":` only where it is one: a string holding it
            // has its quotes escaped.
            if !spans.contains(&format!("\"{name}\":")) {
                line.push(',');
                line.push_str(&Value::from(name).to_string());
                line.push(':');
                line.push_str(&value.to_string());
            }
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

/// Puts each field an event records into a JSON object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

/// Text log fields with their control characters escaped, so that no
/// field (a handler's console line above all) can forge a line of its own
/// or drive the terminal: the JSON format escapes them already.
fn escaped_fields() -> impl for<'w> FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = escape_all_controls(&format!("{value:?}"));
        match field.name() {
            "message" => write!(writer, "{text}"),
            name => write!(writer, "{name}={text}"),
        }
    })
    .delimited(" ")
}

/// `text` with every control character written as an escape (`\n`,
/// `\u{1b}`): one log line stays one line.
fn escape_all_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_owned(),
            '\r' => "\\r".to_owned(),
            '\t' => "\\t".to_owned(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}
