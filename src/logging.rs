//! Logs (`--log-format`): text for a person at a terminal, or JSON for a
//! log pipeline, one object per line:
//!
//! ```text
//! {"timestamp":"2026-12-01T19:40:00.123456Z","level":"INFO","target":"sessiond::access",
//!  "message":"request","request_id":"5f0c…","fields":{"method":"GET","route":"/api/auth/session",…}}
//! ```
//!
//! The fields of every span the event happened in (outermost first) sit at
//! the top level beside `message`; the event's own fields go under
//! `fields`. So `request_id`, a field of the span each HTTP request runs in
//! (see [`crate::http::request_id`]), is on every line that request
//! writes, at the same place whatever span a library opens inside it.
//!
//! Written here rather than with tracing-subscriber's `json` feature: that
//! one shows only the innermost span's fields (or every span in a list),
//! so the request id would move or vanish under a nested span; this is
//! also one crate fewer.
//!
//! Kept whole: both formats share the shortcut for each HTTP request's
//! span (`OnlyRequestId`), and the tests write the same spans through
//! both and through tracing-subscriber's own writer to compare them; most
//! of the length is those tests.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; a request's lines start `request{request_id=…}:`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter when `RUST_LOG` is not set. hyper warns once per shed slow
/// client: a slowloris attack would otherwise flood the log. The access
/// log (a line per request) is off: at tens of thousands of cached
/// answers a second, a synchronous write per request would cost more than
/// the answer itself; `RUST_LOG=info,hyper=error` turns it on.
pub const DEFAULT_FILTER: &str = "info,hyper=error,sessiond::access=off";

/// Installs the global subscriber: `RUST_LOG` (else [`DEFAULT_FILTER`]),
/// to stderr, in `format`.
pub fn init(format: LogFormat) {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| EnvFilter::try_new(s).is_ok())
        .unwrap_or_else(|| DEFAULT_FILTER.to_string());
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => install(
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .fmt_fields(TextFields::default())
                .finish(),
            filter(&spec),
        ),
        LogFormat::Json => install(
            builder
                .with_ansi(false)
                .fmt_fields(JsonFields)
                .event_format(JsonEvent)
                .finish(),
            filter(&spec),
        ),
    }
}

/// Which levels of which targets are written.
#[derive(Debug)]
enum Filter {
    /// Levels by target alone: decided once per call site, with no work
    /// (and no lock) when a span is made, entered, left or closed.
    Static(Targets),
    /// Directives that name spans or fields need `EnvFilter`, which keeps
    /// a table of live spans behind a lock.
    Dynamic(Box<EnvFilter>),
}

/// The filter `spec` (`RUST_LOG` syntax) describes, as cheap as it can be.
fn filter(spec: &str) -> Filter {
    // An empty spec is left to `EnvFilter`, which has its own default.
    if !spec.trim().is_empty() && !spec.contains(['[', '{']) {
        if let Ok(targets) = spec.parse::<Targets>() {
            return Filter::Static(targets);
        }
    }
    Filter::Dynamic(Box::new(EnvFilter::new(spec)))
}

fn install<S>(subscriber: S, filter: Filter)
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    // Fails only when a subscriber is already installed: keep that one.
    let _ = match filter {
        Filter::Static(targets) => subscriber.with(targets).try_init(),
        Filter::Dynamic(env) => subscriber.with(*env).try_init(),
    };
}

/// Top-level keys of a JSON line; a span field of the same name is left out.
const RESERVED: [&str; 5] = ["timestamp", "level", "target", "message", "fields"];

/// One JSON line, written outside the subscriber (the start-up banner, a
/// fatal error), shaped as the subscriber's lines are.
pub fn json_line(level: &str, target: &str, message: &str, fields: Map<String, Value>) -> String {
    let mut timestamp = String::new();
    // Writing to a String cannot fail.
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    let mut out = String::with_capacity(128);
    put(&mut out, "timestamp", &Value::String(timestamp));
    put(&mut out, "level", &Value::from(level));
    put(&mut out, "target", &Value::from(target));
    put(&mut out, "message", &Value::from(message));
    if !fields.is_empty() {
        put(&mut out, "fields", &Value::Object(fields));
    }
    out.push('}');
    out
}

/// Appends `"key":value` to a JSON object being written (opening it first).
fn put(out: &mut String, key: &str, value: &Value) {
    out.push(if out.is_empty() { '{' } else { ',' });
    out.push_str(&Value::from(key).to_string());
    out.push(':');
    out.push_str(&value.to_string());
}

/// The field every HTTP request's span carries (see [`crate::http::server`]).
const REQUEST_ID: &str = "request_id";

/// The longest `request_id` value [`OnlyRequestId`] holds: a proxy's id is
/// at most [`crate::http::request_id::MAX_LEN`] characters.
const REQUEST_ID_ROOM: usize = 160;

/// Sees whether a span's fields are `request_id` alone, given as a
/// `Display` or `Debug` value (as each HTTP request's span is made), and
/// keeps that value's text. A span is made for every request: its fields
/// are then written in one go, without the general visitor (and, for JSON,
/// without a map and its serialisation).
struct OnlyRequestId {
    text: [u8; REQUEST_ID_ROOM],
    len: usize,
    /// Fields seen so far.
    seen: usize,
    /// Whether the fields are still `request_id` alone, with its text kept.
    fits: bool,
}

impl OnlyRequestId {
    fn of(fields: &impl RecordFields) -> Option<OnlyRequestId> {
        let mut only = OnlyRequestId {
            text: [0; REQUEST_ID_ROOM],
            len: 0,
            seen: 0,
            fits: true,
        };
        fields.record(&mut only);
        (only.fits && only.seen == 1).then_some(only)
    }

    fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.text[..self.len]).ok()
    }
}

impl fmt::Write for OnlyRequestId {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.text.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Visitor methods that only say the fields are not `request_id` alone.
macro_rules! not_only_request_id {
    ($($method:ident: $value:ty),* $(,)?) => {
        $(fn $method(&mut self, _: &Field, _: $value) {
            self.fits = false;
        })*
    };
}

impl Visit for OnlyRequestId {
    // Any other kind of value is written by the general visitor.
    not_only_request_id!(
        record_f64: f64,
        record_i64: i64,
        record_u64: u64,
        record_i128: i128,
        record_u128: u128,
        record_bool: bool,
        record_str: &str,
        record_bytes: &[u8],
        record_error: &(dyn std::error::Error + 'static),
    );

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.seen += 1;
        if self.seen > 1 || field.name() != REQUEST_ID {
            self.fits = false;
        }
        if self.fits && fmt::Write::write_fmt(self, format_args!("{value:?}")).is_err() {
            self.fits = false;
        }
    }
}

/// Writes `parts` (the field's name and a `request_id` of at most
/// [`REQUEST_ID_ROOM`] bytes, with what joins them) in one write, so that
/// the span's `String` is allocated once, not grown part by part.
fn write_once<const N: usize>(writer: &mut Writer<'_>, parts: [&str; N]) -> fmt::Result {
    let mut line = [0u8; REQUEST_ID.len() + 8 + REQUEST_ID_ROOM];
    let mut n = 0;
    for part in parts {
        let room = line.get_mut(n..n + part.len()).ok_or(fmt::Error)?;
        room.copy_from_slice(part.as_bytes());
        n += part.len();
    }
    writer.write_str(std::str::from_utf8(&line[..n]).map_err(|_| fmt::Error)?)
}

/// Fields as text, exactly as tracing-subscriber's [`DefaultFields`]
/// writes them; a request's span (`request_id` alone) without its
/// general visitor when there is no colour to add.
#[derive(Default)]
pub struct TextFields(DefaultFields);

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        if !writer.has_ansi_escapes() {
            if let Some(only) = OnlyRequestId::of(&fields) {
                if let Some(text) = only.text() {
                    return write_once(&mut writer, [REQUEST_ID, "=", text]);
                }
            }
        }
        self.0.format_fields(writer, fields)
    }
}

/// Collects fields as JSON values: numbers and booleans as such, anything
/// else as its text.
#[derive(Default)]
struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

/// How a span's fields are kept (in its extensions, by the fmt layer): the
/// members of a JSON object without its braces, so that fields recorded
/// later are appended after a comma.
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        if let Some(only) = OnlyRequestId::of(&fields) {
            // An id that needs no escaping (as every id does, being visible
            // ASCII other than a quote or a backslash) is written as is.
            if let Some(text) = only.text().filter(|t| {
                t.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            }) {
                return write_once(&mut writer, ["\"", REQUEST_ID, "\":\"", text, "\""]);
            }
        }
        let mut visitor = JsonVisitor::default();
        fields.record(&mut visitor);
        let object = Value::Object(visitor.0).to_string();
        let members = object
            .strip_prefix('{')
            .and_then(|o| o.strip_suffix('}'))
            .unwrap_or("");
        writer.write_str(members)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut more = String::new();
        self.format_fields(Writer::new(&mut more), fields)?;
        if !more.is_empty() {
            if !current.fields.is_empty() {
                current.fields.push(',');
            }
            current.fields.push_str(&more);
        }
        Ok(())
    }
}

/// Writes an event as one JSON object (see the module's documentation).
pub struct JsonEvent;

impl<S> FormatEvent<S, JsonFields> for JsonEvent
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
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        let mut fields = fields.0;
        let message = match fields.remove("message") {
            Some(Value::String(m)) => m,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let mut line = json_line(meta.level().as_str(), meta.target(), &message, Map::new());
        // Reopen the object for the span fields and the event's own.
        line.pop();
        let mut spans = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(kept) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if kept.fields.is_empty() {
                    continue;
                }
                if let Ok(Value::Object(members)) =
                    serde_json::from_str::<Value>(&format!("{{{}}}", kept.fields))
                {
                    spans.extend(members);
                }
            }
        }
        for (key, value) in &spans {
            if !RESERVED.contains(&key.as_str()) {
                put(&mut line, key, value);
            }
        }
        if !fields.is_empty() {
            put(&mut line, "fields", &Value::Object(fields));
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use sessiond_actors::sync::MutexExt;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.locked().write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn lines(captured: &Captured) -> Vec<Value> {
        let bytes = captured.0.locked().clone();
        String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    #[test]
    fn each_event_is_one_object_with_the_fields_of_every_span() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("trace"))
            .with_writer(captured.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonEvent)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(n = 3, "outside \"any\"\nspan");
            let outer = tracing::error_span!("request", request_id = "abc");
            let _o = outer.enter();
            let inner = tracing::trace_span!("query", table = tracing::field::Empty);
            inner.record("table", "users");
            let _i = inner.enter();
            tracing::warn!(target: "sessiond::audit", ok = true, who = %"x@y", "inside");
        });
        let lines = lines(&captured);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "outside \"any\"\nspan");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["fields"]["n"], 3);
        assert!(lines[0]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert!(lines[0].get("request_id").is_none());
        assert_eq!(lines[1]["target"], "sessiond::audit");
        assert_eq!(lines[1]["request_id"], "abc", "{}", lines[1]);
        assert_eq!(lines[1]["table"], "users");
        assert_eq!(lines[1]["fields"]["ok"], true);
        assert_eq!(lines[1]["fields"]["who"], "x@y");
    }

    /// Events in a request's span (as the listener makes it: `request_id`
    /// alone, as a `Display` value), in spans like it that are not, and in
    /// a span inside each.
    fn in_spans() {
        for span in [
            tracing::error_span!("request", request_id = %"5f0c9e"),
            tracing::error_span!("request", request_id = %"q\"uo\\te"),
            tracing::error_span!("request", request_id = "abc"),
            tracing::error_span!("request", request_id = %"5f0c9e", n = 1),
            tracing::error_span!("request", other = %"5f0c9e"),
            tracing::error_span!("request", request_id = 7),
        ] {
            let _s = span.enter();
            let inner = tracing::info_span!("inner", table = %"users");
            let _i = inner.enter();
            tracing::warn!(ok = true, "inside");
        }
    }

    /// What [`in_spans`] writes as text, its fields written by `fields`.
    fn text_written<N>(fields: N) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("trace"))
            .with_writer(captured.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, in_spans);
        let bytes = captured.0.locked().clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    /// What `events` writes as JSON.
    fn json_written(events: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("trace"))
            .with_writer(captured.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonEvent)
            .finish();
        tracing::subscriber::with_default(subscriber, events);
        lines(&captured)
    }

    #[test]
    fn a_request_span_is_written_as_the_general_visitor_writes_it() {
        let ours = text_written(TextFields::default());
        assert_eq!(ours, text_written(DefaultFields::new()));
        let ours: Vec<&str> = ours.lines().collect();
        assert_eq!(ours.len(), 6, "{ours:?}");
        assert!(
            ours[0].contains("request{request_id=5f0c9e}:inner{table=users}: "),
            "{}",
            ours[0]
        );

        let json = json_written(in_spans);
        assert_eq!(json.len(), 6, "{json:?}");
        let ids: Vec<Value> = json.iter().map(|l| l["request_id"].clone()).collect();
        let want = [
            Value::from("5f0c9e"),
            Value::from("q\"uo\\te"),
            Value::from("abc"),
            Value::from("5f0c9e"),
            Value::Null,
            Value::from(7),
        ];
        assert_eq!(ids, want, "{json:?}");
        assert!(json.iter().all(|l| l["table"] == "users"), "{json:?}");
        assert_eq!(json[3]["n"], 1);
        assert_eq!(json[4]["other"], "5f0c9e");

        // An id as the listener makes it.
        let id = crate::http::request_id::RequestId::generate();
        let json = json_written(|| {
            let span = tracing::error_span!("request", request_id = %id);
            let _s = span.enter();
            tracing::warn!("inside");
        });
        assert_eq!(json[0]["request_id"], id.as_str(), "{json:?}");
    }

    #[test]
    fn static_directives_need_no_env_filter() {
        for spec in [DEFAULT_FILTER, "warn", "sessiond=debug,hyper=off", "trace"] {
            assert!(matches!(filter(spec), Filter::Static(_)), "{spec}");
        }
        for spec in ["info,[request]=debug", "[{request_id}]=trace", ""] {
            assert!(matches!(filter(spec), Filter::Dynamic(_)), "{spec}");
        }
        let Filter::Static(targets) = filter(DEFAULT_FILTER) else {
            panic!("the default filter is static");
        };
        use tracing::Level;
        assert!(targets.would_enable("sessiond::audit", &Level::INFO));
        assert!(!targets.would_enable("sessiond::audit", &Level::DEBUG));
        assert!(!targets.would_enable("sessiond::access", &Level::ERROR));
        assert!(targets.would_enable("hyper::proto", &Level::ERROR));
        assert!(!targets.would_enable("hyper::proto", &Level::WARN));
    }

    #[test]
    fn a_line_written_outside_the_subscriber_has_the_same_shape() {
        let mut fields = Map::new();
        fields.insert("listen".into(), Value::from("127.0.0.1:1"));
        let line: Value =
            serde_json::from_str(&json_line("INFO", "sessiond", "up", fields)).expect("JSON");
        assert_eq!(line["message"], "up");
        assert_eq!(line["fields"]["listen"], "127.0.0.1:1");
    }
}
