//! The fields of spans in JSON logs, written straight out as a JSON object.
//!
//! The JSON log format stores every span's fields as JSON text when the span is created, and
//! tracing-subscriber's own `JsonFields` builds a map of `serde_json` values for it first — about
//! 5 k instructions for the `backend_call` span every backend call opens, most of it for nothing
//! when the call logs no event. This writes the same object directly.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    field::RecordFields,
    fmt::{FormatFields, FormattedFields, format::Writer},
};

/// Formats span fields as one JSON object, the shape the JSON event format expects.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut object = Object::new(&mut writer);
        fields.record(&mut object);
        object.finish()
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // Reopen the object written before (`{...}`) and add the new fields to it.
        let mut text = match current.fields.strip_suffix('}') {
            Some(open) if open.len() > 1 => open.to_owned(),
            _ => String::from("{"),
        };
        let first = text.len() == 1;
        let mut object = Object {
            out: &mut text,
            first,
            result: Ok(()),
            started: true,
        };
        fields.record(&mut object);
        object.finish()?;
        current.fields = text;
        Ok(())
    }
}

/// A JSON object being written, one field at a time.
struct Object<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
    started: bool,
}

impl<'a, W: Write> Object<'a, W> {
    fn new(out: &'a mut W) -> Self {
        Self {
            out,
            first: true,
            result: Ok(()),
            started: false,
        }
    }

    /// Writes `"name":` (with the separator before it) and then the value.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.started {
                self.out.write_char('{')?;
                self.started = true;
            }
            if !self.first {
                self.out.write_char(',')?;
            }
            self.first = false;
            let name = field.name();
            string(self.out, name.strip_prefix("r#").unwrap_or(name))?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }

    fn finish(self) -> fmt::Result {
        self.result?;
        if !self.started {
            self.out.write_char('{')?;
        }
        self.out.write_char('}')
    }
}

impl<W: Write> Visit for Object<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| string(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes them as null too.
        self.field(field, |out| {
            if value.is_finite() {
                write!(out, "{value}")
            } else {
                out.write_str("null")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// Writes `s` as a JSON string.
fn string(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(s)?;
    out.write_char('"')
}

/// Writes what it is given with JSON string escapes (no quotes around it).
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Every character that needs an escape is ASCII, so scanning bytes keeps UTF-8 intact.
        let mut plain = 0;
        for (i, &b) in s.as_bytes().iter().enumerate() {
            let escaped = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escaped.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escaped)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{fmt::MakeWriter, layer::SubscriberExt};

    use super::*;

    /// Log lines captured in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Logs one event inside a span with every kind of field, and a field recorded later, and
    /// returns the line's `span` object.
    fn logged_span(ours: bool) -> serde_json::Value {
        let lines = Lines::default();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(lines.clone());
        let log = || {
            let span = tracing::info_span!("backend_call",
                hook = "PreRoomUserJoin", request_id = "a \"quoted\"\n\\ id\u{1}é",
                dry_run = false, apps = 16u64, delta = -3i64, ratio = 1.5f64, nan = f64::NAN,
                kind = ?Some("debug"), r#type = 2u64, later = tracing::field::Empty);
            span.record("later", "recorded after");
            span.in_scope(|| tracing::warn!(detail = "x", "an event"));
        };
        if ours {
            tracing::subscriber::with_default(
                tracing_subscriber::registry().with(layer.fmt_fields(JsonFields)),
                log,
            );
        } else {
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log);
        }
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        line["span"].clone()
    }

    #[test]
    fn span_fields_log_exactly_as_tracing_subscribers_own_json_fields() {
        let ours = logged_span(true);
        let theirs = logged_span(false);

        assert_eq!(ours, theirs);
        assert_eq!(ours["request_id"], "a \"quoted\"\n\\ id\u{1}é");
        assert_eq!(ours["later"], "recorded after");
        assert_eq!(ours["type"], 2);
    }
}
