//! How a text log line writes fields: `name=value`, separated by spaces, as tracing-subscriber's
//! default does, with three differences.
//!
//! - No control character reaches a line from a value: messages, errors and `%`-displayed
//!   values are written with control characters, line and paragraph separators and
//!   bidirectional overrides escaped as `{:?}` of a `char` writes them (`\n`, `\u{1b}`,
//!   `\u{202e}`), so a value cannot start a forged line, send a terminal escape or reorder what a
//!   reader sees. Strings (`field = text`) are quoted and escaped as Rust's `{:?}` does. The
//!   default escaped terminal escapes in messages and errors only, and left line breaks alone.
//!   A backslash is written as it is outside quotes, so a value may show `\n` without holding a
//!   line break.
//! - `otel.*` fields are left out: they name a span for trace exporters, and repeat on a line
//!   what its other fields say. JSON lines keep them.
//! - Names and `=` are written as they are, never through a colour style, which the default ran
//!   per field even with colours off.
//!
//! With the default, writing fields was about a twentieth of the instructions of an authorized
//! request in the all-in-one mode (README, "Benchmarks"). JSON lines are written by
//! tracing-subscriber's JSON formatter, which escapes as JSON does.

use std::error::Error;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// The field formatter of text log lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        TextVisitor::write(writer, true, fields)
    }

    /// Fields recorded on a span after its start; the default would leave a trailing space when
    /// all of them are left out.
    fn add_fields(&self, current: &'writer mut FormattedFields<Self>, fields: &span::Record<'_>) -> fmt::Result {
        let first = current.fields.is_empty();
        TextVisitor::write(current.as_writer(), first, fields)
    }
}

struct TextVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl<'writer> TextVisitor<'writer> {
    fn write<R: RecordFields>(writer: Writer<'writer>, first: bool, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor { writer, first, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }

    /// Starts a field: a space unless it is the first. Returns the name to write, or `None` for
    /// fields lines leave out.
    fn start(&mut self, field: &Field) -> Option<&'static str> {
        let name = field.name();
        if self.result.is_err() || name.starts_with("otel.") || name.starts_with("log.") {
            return None;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.writer.write_char(' ');
        }
        Some(name.strip_prefix("r#").unwrap_or(name))
    }

    fn write_named(&mut self, name: &str, value: fmt::Arguments<'_>) {
        self.write_name(name);
        self.write_value(value);
    }

    fn write_value(&mut self, value: fmt::Arguments<'_>) {
        if self.result.is_ok() {
            self.result = Sanitized(&mut self.writer).write_fmt(value);
        }
    }

    fn write_number(&mut self, field: &Field, value: impl fmt::Debug) {
        let Some(name) = self.start(field) else { return };
        self.write_name(name);
        if self.result.is_ok() {
            self.result = write!(self.writer, "{value:?}");
        }
    }

    /// `name=`, or nothing for a message.
    fn write_name(&mut self, name: &str) {
        if self.result.is_ok() && name != "message" {
            self.result = self.writer.write_str(name).and_then(|()| self.writer.write_char('='));
        }
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let Some(name) = self.start(field) else { return };
        if name == "message" {
            self.result = Sanitized(&mut self.writer).write_str(value);
        } else if value.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') {
            // What `{:?}` writes for such a text, without its walk through every character.
            self.write_name(name);
            for part in ["\"", value, "\""] {
                if self.result.is_ok() {
                    self.result = self.writer.write_str(part);
                }
            }
        } else {
            self.write_named(name, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        let Some(name) = self.start(field) else { return };
        self.write_named(name, format_args!("{value}"));
        if let Some(source) = value.source()
            && self.result.is_ok()
        {
            // As the default writes them: the sources without the error itself.
            self.result = write!(self.writer, " {name}.sources=[");
            for (i, error) in std::iter::successors(Some(source), |&e| e.source()).enumerate() {
                let separator = if i == 0 { "" } else { ", " };
                self.write_value(format_args!("{separator}{error}"));
            }
            if self.result.is_ok() {
                self.result = self.writer.write_char(']');
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let Some(name) = self.start(field) else { return };
        self.write_named(name, format_args!("{value:?}"));
    }

    // Numbers hold no control character, so they skip the escaping writer.
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write_number(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write_number(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write_number(field, value);
    }
}

/// Writes through, escaping what could break or disguise a line (see the module's comment) as
/// `{:?}` of a `char` does.
struct Sanitized<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Sanitized<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // C0 controls and DEL are single bytes; C1 controls are encoded from 0xC2 and the
        // separators and bidirectional controls from 0xE2, which other characters share (such
        // as `©` and `€`): those take the slower walk.
        if !s.bytes().any(|b| b < b' ' || b == 0x7f || b == 0xc2 || b == 0xe2) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            if escaped(c) {
                write!(self.0, "{}", c.escape_debug())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

fn escaped(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of one event at INFO, formatted as a text line's fields.
    fn line(event: impl FnOnce()) -> String {
        let text = crate::capture::written(
            |writer| {
                tracing_subscriber::fmt()
                    .fmt_fields(TextFields)
                    .without_time()
                    .with_level(false)
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(writer)
                    .finish()
            },
            event,
        );
        text.trim_end_matches('\n').to_owned()
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Failure {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn fields_are_written_as_the_default_formatter_writes_them() {
        let text =
            line(|| tracing::info!(path = "/api/v1", id = 7, delta = -2, ms = 0.5, ok = true, route = %"/x", "served"));
        assert_eq!(text, r#"served path="/api/v1" id=7 delta=-2 ms=0.5 ok=true route=/x"#);
    }

    #[test]
    fn texts_that_need_escaping_are_written_as_debug_writes_them() {
        let text = line(|| tracing::info!(path = "/a\"b\\c\u{200f}d", "x"));
        assert_eq!(text, format!("x path={:?}", "/a\"b\\c\u{200f}d"));
    }

    #[test]
    fn control_characters_in_a_message_or_a_displayed_value_are_escaped() {
        let text = line(|| tracing::info!(error = %"bad\nline\u{1b}[31m\u{85}", "got \u{7}{}", "a\r\nb"));
        assert_eq!(text, r"got \u{7}a\r\nb error=bad\nline\u{1b}[31m\u{85}");
        assert!(!text.contains('\n') && !text.contains('\u{1b}'));
    }

    #[test]
    fn separators_and_bidirectional_overrides_are_escaped() {
        let text = line(|| tracing::info!(who = %"a\u{2028}b\u{202e}c\u{2067}", "x"));
        assert_eq!(text, r"x who=a\u{2028}b\u{202e}c\u{2067}");
    }

    #[test]
    fn other_non_ascii_text_is_written_unchanged() {
        assert_eq!(line(|| tracing::info!(who = %"Zoë © – €", "hi")), "hi who=Zoë © – €");
    }

    #[test]
    fn otel_fields_are_left_out_of_lines() {
        let text = line(|| tracing::info_span!("s", otel.kind = "server", x = 1).in_scope(|| tracing::info!("in")));
        assert_eq!(text, "s{x=1}: in");
    }

    #[test]
    fn fields_recorded_later_join_the_span_s_and_left_out_ones_leave_no_space() {
        let text = line(|| {
            let span = tracing::info_span!(
                "s",
                x = 1,
                route = tracing::field::Empty,
                otel.status_code = tracing::field::Empty
            );
            span.record("otel.status_code", "OK");
            span.record("route", "/r");
            span.in_scope(|| tracing::info!("in"));
        });
        assert_eq!(text, r#"s{x=1 route="/r"}: in"#);
    }

    #[test]
    fn an_error_is_written_with_its_sources() {
        let error = Failure("outer", Some(Box::new(Failure("inner\n", None))));
        let text = line(|| tracing::info!(error = &error as &(dyn Error + 'static), "failed"));
        assert_eq!(text, r"failed error=outer error.sources=[inner\n]");
    }
}
