//! Which characters text from outside may hold. PostgreSQL cannot store U+0000 in text at all,
//! and SQLite would store it and then compare prefixes only up to it, so both stores are kept
//! from ever seeing one: input with a control character that has no place in it is refused as
//! a `VALIDATION_ERROR` naming the field, before it reaches a service or a store.

use crate::{Error, Result};

/// A control character with no place in any text: every C0 control but tab, line feed and
/// carriage return, and DEL. (Free text, such as an event's property values, may hold the three.)
pub fn is_stray_control(c: char) -> bool {
    c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Refuses a stray control character (see [`is_stray_control`]) in free text.
pub fn check_text(field: &str, value: &str) -> Result<()> {
    match value.chars().any(is_stray_control) {
        true => Err(refused(field)),
        false => Ok(()),
    }
}

/// Refuses any control character, tab and line breaks included, in a one-line value: a name, an
/// e-mail address, a domain, an id, a filter value.
pub fn check_line(field: &str, value: &str) -> Result<()> {
    match value.chars().any(char::is_control) {
        true => Err(refused(field)),
        false => Ok(()),
    }
}

/// The refusal of a value holding a control character it may not hold.
pub fn refused(field: &str) -> Error {
    Error::invalid(field, "must not contain control characters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_keeps_its_line_breaks_but_never_a_nul() {
        assert!(check_text("props", "a\tb\r\nc").is_ok());
        for bad in ["a\0b", "\u{1}", "\u{7f}", "\u{1b}[31m"] {
            let err = check_text("props", bad).unwrap_err();
            assert_eq!(err.text(), "props: must not contain control characters");
        }
    }

    #[test]
    fn a_line_holds_no_control_character_at_all() {
        assert!(check_line("name", "Zoë's site").is_ok());
        for bad in ["a\nb", "a\tb", "\0", "\u{85}"] {
            assert!(check_line("name", bad).is_err(), "{bad:?} accepted");
        }
    }
}
