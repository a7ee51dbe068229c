//! The log: `tracing` to stderr, as text for people or as JSON lines for
//! clusters (`nexus serve`'s busy threads write theirs in batches:
//! `server::log_batch`).
//!
//! Invariants: one event is one line, whatever a handler writes (text
//! escapes control characters; JSON escapes them already); in JSON, every
//! field is a top-level key, the fields of the spans the event is in
//! (`nexus serve`'s request span: `request_id`, `method`, `route`,
//! `handler`) included, so a log pipeline filters on them without parsing
//! the message; no key appears twice.

use std::fmt;

use nexus_host::LogFormat;
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
        .with_writer(crate::server::log_batch::Lines);
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
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\",\"target\":", meta.level())?;
        let mut fields = Fields::default();
        fields.json(&meta.target());
        // `JsonFields` keeps each span's fields as a JSON object, formatted
        // once: its members are spliced in as they are.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let members = extensions
                    .get::<FormattedFields<JsonFields>>()
                    .and_then(|f| f.fields.strip_prefix('{')?.strip_suffix('}'));
                if let Some(members) = members.filter(|m| !m.is_empty()) {
                    fields.line.push(b',');
                    fields.line.extend_from_slice(members.as_bytes());
                }
            }
        }
        fields.spans_end = fields.line.len();
        event.record(&mut fields);
        fields.line.push(b'}');
        // serde_json writes UTF-8, and the spans' members are text.
        writer.write_str(std::str::from_utf8(&fields.line).map_err(|_| fmt::Error)?)?;
        writeln!(writer)
    }
}

/// The rest of a JSON line after its level: the target, the spans' members
/// (up to `spans_end`), then each field the event records that no span has.
#[derive(Default)]
struct Fields {
    line: Vec<u8>,
    spans_end: usize,
}

impl Fields {
    fn json(&mut self, value: &impl serde::Serialize) {
        // Writing to a `Vec` fails only for a value that cannot be JSON,
        // and these are strings and numbers.
        let _ = serde_json::to_writer(&mut self.line, value);
    }

    fn put(&mut self, field: &Field, value: &impl serde::Serialize) {
        let name = field.name();
        if !has_key(&self.line[..self.spans_end], name) {
            self.line.push(b',');
            self.json(&name);
            self.line.push(b':');
            self.json(value);
        }
    }
}

/// Whether JSON `members` have the key `name`: `"name":` is a key only
/// where it is one, as a string holding it has its quotes escaped.
fn has_key(members: &[u8], name: &str) -> bool {
    let name = name.as_bytes();
    members
        .windows(name.len() + 3)
        .any(|w| w[0] == b'"' && &w[1..=name.len()] == name && &w[name.len() + 1..] == b"\":")
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, &format!("{value:?}"));
    }
}

/// Text log fields with their control characters escaped, so that no
/// field (a handler's console line above all) can forge a line of its own
/// or drive the terminal: the JSON format escapes them already.
fn escaped_fields() -> impl for<'w> FormatFields<'w> + 'static {
    use std::fmt::Write;
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() != "message" {
            write!(writer, "{}=", field.name())?;
        }
        write!(Escaped(writer), "{value:?}")
    })
    .delimited(" ")
}

/// Writes through to its writer with every control character written as
/// an escape (`\n`, `\u{1b}`): one log line stays one line.
struct Escaped<W>(W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, mut text: &str) -> fmt::Result {
        while let Some(at) = text.find(char::is_control) {
            self.0.write_str(&text[..at])?;
            let c = text[at..].chars().next().expect("a character at `at`");
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "{}", c.escape_unicode())?,
            }
            text = &text[at + c.len_utf8()..];
        }
        self.0.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::{has_key, Escaped};

    #[test]
    fn a_key_is_found_only_where_it_is_one() {
        let members = br#""handler":"a","route":"\"path\":x""#;
        assert!(has_key(members, "handler"));
        assert!(has_key(members, "route"));
        assert!(!has_key(members, "path"));
        assert!(!has_key(members, "hand"));
        assert!(!has_key(b"", "handler"));
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let mut out = String::new();
        write!(Escaped(&mut out), "a\nb\r\tc\u{1b}[2J é\u{7}").unwrap();
        assert_eq!(out, r"a\nb\r\tc\u{1b}[2J é\u{7}");
    }
}
