//! Regular expressions of statistics filters (Plausible's `matches`): RE2's syntax, as the `regex`
//! crate takes it, found anywhere in the text unless anchored. SQLite leaves its `REGEXP`
//! operator to the application; [`install`] gives it to every SQLite connection of the process,
//! with the same crate, so that a pattern means the same in SQL and in Rust.

use std::sync::{Arc, Once};

use regex::{Regex, RegexBuilder};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;

/// A compiled pattern may take this much memory: a long pattern of nested repetitions compiles
/// to a large program, and patterns come from API clients.
const COMPILED_LIMIT: usize = 1 << 20;

/// `pattern` compiled, or why it is not a regular expression we take, in one line.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern).size_limit(COMPILED_LIMIT).build().map_err(|e| match e {
        // The parser's text draws the pattern over several lines and ends with the reason.
        regex::Error::Syntax(text) => text.lines().last().unwrap_or_default().trim_start_matches("error: ").to_owned(),
        regex::Error::CompiledTooBig(_) => "it compiles too large".to_owned(),
        other => other.to_string(),
    })
}

/// How a text comparison finds its value in a text.
#[derive(Clone, Copy)]
pub enum Finds {
    /// The whole text is the value.
    Whole,
    /// The value is somewhere in the text.
    Within,
    /// The whole text matches the value, whose `*` stands for any text.
    Wildcard,
}

/// The regular expression of a comparison that ignores case in every alphabet (`É` is `é`), as
/// PostgreSQL's `ILIKE` does and SQLite's `LIKE` does only for ASCII letters.
pub fn ignoring_case(value: &str, finds: Finds) -> String {
    match finds {
        Finds::Whole => format!("(?i)^{}$", regex::escape(value)),
        Finds::Within => format!("(?i){}", regex::escape(value)),
        Finds::Wildcard => {
            let parts: Vec<String> = value.split('*').map(regex::escape).collect();
            format!("(?i)^{}$", parts.join(".*"))
        }
    }
}

/// `pattern` (one [`compile`] took) as PostgreSQL's `~` must be given it to mean the same: where
/// the two flavours write one thing differently, ours is rewritten. PostgreSQL reads `\b` as a
/// backspace and `\B` as a backslash, which RE2 reads as word boundaries (PostgreSQL's `\y`,
/// `\Y`, and `\m`, `\M` for a word's start and end); its `\x` takes as many hex digits as
/// follow, and RE2's end of text is its `\Z`. Every escaped character is written as PostgreSQL's
/// `\U` and eight hex digits. What PostgreSQL lacks (Unicode classes `\pL`, flags after the
/// start, half word boundaries) is left for it to refuse.
pub fn for_postgres(pattern: &str) -> String {
    use regex_syntax::ast::{self, AssertionKind as A, Ast, ClassSetItem, Literal, LiteralKind, Span};

    struct Rewrites(Vec<(Span, String)>);

    impl Rewrites {
        fn literal(&mut self, literal: &Literal) {
            if matches!(literal.kind, LiteralKind::HexFixed(_) | LiteralKind::HexBrace(_) | LiteralKind::Special(_)) {
                self.0.push((literal.span, format!("\\U{:08X}", u32::from(literal.c))));
            }
        }
    }

    impl ast::Visitor for &mut Rewrites {
        type Output = ();
        type Err = std::convert::Infallible;

        fn finish(self) -> Result<(), Self::Err> {
            Ok(())
        }

        fn visit_pre(&mut self, ast: &Ast) -> Result<(), Self::Err> {
            match ast {
                Ast::Literal(literal) => self.literal(literal),
                Ast::Assertion(assertion) => {
                    let written = match assertion.kind {
                        A::WordBoundary => "\\y",
                        A::NotWordBoundary => "\\Y",
                        A::WordBoundaryStart | A::WordBoundaryStartAngle => "\\m",
                        A::WordBoundaryEnd | A::WordBoundaryEndAngle => "\\M",
                        A::EndText => "\\Z",
                        _ => return Ok(()),
                    };
                    self.0.push((assertion.span, written.to_owned()));
                }
                _ => {}
            }
            Ok(())
        }

        fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), Self::Err> {
            if let ClassSetItem::Literal(literal) = item {
                self.literal(literal);
            }
            Ok(())
        }
    }

    let Ok(parsed) = ast::parse::Parser::new().parse(pattern) else { return pattern.to_owned() };
    let mut rewrites = Rewrites(Vec::new());
    let Ok(()) = ast::visit(&parsed, &mut rewrites);
    rewrites.0.sort_by_key(|(span, _)| span.start.offset);
    let mut written = String::with_capacity(pattern.len());
    let mut at = 0;
    for (span, text) in rewrites.0 {
        written.push_str(&pattern[at..span.start.offset]);
        written.push_str(&text);
        at = span.end.offset;
    }
    written.push_str(&pattern[at..]);
    written
}

/// Makes `text REGEXP pattern` work on every SQLite connection opened from now on in this
/// process (sqlx's and rusqlite's share one SQLite library). Idempotent.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: `entry` neither opens nor closes a database, nor changes the list of automatic
        // extensions, which is what `register_auto_extension` asks of it.
        unsafe { rusqlite::auto_extension::register_auto_extension(entry) }
            .expect("SQLite takes an automatic extension");
    });
}

/// What SQLite calls for each new connection.
unsafe extern "C" fn entry(
    db: *mut rusqlite::ffi::sqlite3,
    error: *mut *mut std::os::raw::c_char,
    _: *const rusqlite::ffi::sqlite3_api_routines,
) -> std::os::raw::c_int {
    // SAFETY: SQLite hands over a connection it has just opened and keeps owning;
    // `init_auto_extension` wraps it without closing it.
    unsafe { rusqlite::auto_extension::init_auto_extension(db, error, define) }
}

fn define(db: rusqlite::Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    // SQLite reads `X REGEXP Y` as `regexp(Y, X)`.
    db.create_scalar_function("regexp", 2, flags, regexp)
}

/// Whether the text (NULL for NULL) holds a match of the pattern, compiled once per statement.
fn regexp(ctx: &Context<'_>) -> rusqlite::Result<Option<bool>> {
    let pattern: Arc<Regex> = ctx
        .get_or_create_aux(0, |pattern| -> Result<Regex, Box<dyn std::error::Error + Send + Sync>> {
            Ok(compile(pattern.as_str()?)?)
        })?;
    Ok(match ctx.get_raw(1) {
        ValueRef::Null => None,
        ValueRef::Text(text) => Some(pattern.is_match(&String::from_utf8_lossy(text))),
        other => Some(pattern.is_match(&other.as_i64().map(|n| n.to_string()).unwrap_or_default())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_connections_find_a_pattern_as_the_regex_crate_does() {
        install();
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let found = |text: &str, pattern: &str| -> Option<bool> {
            db.query_row("SELECT ?1 REGEXP ?2", [text, pattern], |row| row.get(0)).unwrap()
        };
        assert_eq!(found("/blog/2024/post", r"^/blog/\d{4}/"), Some(true));
        assert_eq!(found("/Blog/x", "^/blog"), Some(false), "case counts");
        assert_eq!(found("/Blog/x", "(?i)^/blog"), Some(true));
        assert_eq!(found("/shop/blog", "blog"), Some(true), "found anywhere unless anchored");
        let null: Option<bool> = db.query_row("SELECT NULL REGEXP 'a'", [], |row| row.get(0)).unwrap();
        assert_eq!(null, None);
        assert!(db.query_row("SELECT 'a' REGEXP '('", [], |row| row.get::<_, bool>(0)).is_err());
    }

    #[test]
    fn postgresql_is_given_its_spelling_of_what_it_writes_otherwise() {
        assert_eq!(for_postgres(r"\bpost\b"), r"\ypost\y");
        assert_eq!(for_postgres(r"a\Bb\<c\>\z"), r"a\Yb\mc\M\Z");
        assert_eq!(for_postgres(r"\x41BC[\x{e9}\t]"), r"\U00000041BC[\U000000E9\U00000009]");
        assert_eq!(for_postgres(r"^/blog/\d+\.html$"), r"^/blog/\d+\.html$", "the same in both");
    }

    #[test]
    fn ignoring_case_finds_letters_of_every_alphabet() {
        let finds = |value: &str, how: Finds, text: &str| compile(&ignoring_case(value, how)).unwrap().is_match(text);
        assert!(finds("/CAFÉ", Finds::Whole, "/café"));
        assert!(!finds("/CAFÉ", Finds::Whole, "/café/menu"));
        assert!(finds("AFÉ", Finds::Within, "/café/menu"));
        assert!(finds("/CAF*/M?NU", Finds::Wildcard, "/café/m?nu"));
        assert!(!finds("/a.c", Finds::Whole, "/abc"), "a value's characters stand for themselves");
    }

    #[test]
    fn a_pattern_that_compiles_too_large_is_refused() {
        assert_eq!(compile("a{1000}{1000}").unwrap_err(), "it compiles too large");
        assert_eq!(compile("(").unwrap_err(), "unclosed group");
        assert!(compile(r"^/(en|de)/.*\.html$").is_ok());
    }
}
