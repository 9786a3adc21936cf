//! API keys kept out of what the services write: a client may send its key where something else
//! belongs (in a path, as a field name, a team id, a tool's name), and error messages and log
//! lines quote what clients send. Every log line passes through here on its way out
//! (`lines`), and the gateway cuts the texts of its answers (docs/behaviour.md#api-keys).

use std::borrow::Cow;

/// What every personal API key starts with.
pub const KEY_PREFIX: &str = "zv_";
/// A whole key has 38 characters after its prefix; from this many on, a run of letters and digits
/// after the prefix is taken for a key, or for most of one: 31 of a key's 32 random characters
/// leave a few dozen guesses.
const KEY_LIKE: usize = 12;
/// A run this long is a whole key (or more), shown by its hint as the product shows keys.
const WHOLE_KEY: usize = 32;

/// `text` with anything shaped like an API key (the prefix and 12 or more letters and digits) cut:
/// a whole key to its hint `zv_Ab12…wxyz`, a shorter run to `zv_…`.
pub fn keys(text: &str) -> Cow<'_, str> {
    if !text.contains(KEY_PREFIX) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(KEY_PREFIX) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let body = &from[KEY_PREFIX.len()..];
        let mut run = alphanumeric_run(body);
        // A key written right after another: the next one's prefix starts inside this run.
        let stem = &KEY_PREFIX[..KEY_PREFIX.len() - 1];
        if body[run..].starts_with('_') && body[..run].ends_with(stem) && alphanumeric_run(&body[run + 1..]) >= KEY_LIKE
        {
            run -= stem.len();
        }
        out.push_str(KEY_PREFIX);
        if run >= WHOLE_KEY {
            out.push_str(&body[..4]);
            out.push('…');
            out.push_str(&body[run - 4..run]);
        } else if run >= KEY_LIKE {
            out.push('…');
        } else {
            out.push_str(&body[..run]);
        }
        rest = &body[run..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// How many ASCII letters and digits `text` starts with (bytes, on character boundaries).
fn alphanumeric_run(text: &str) -> usize {
    text.bytes().take_while(u8::is_ascii_alphanumeric).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "zv_Ab12Ab12Ab12Ab12Ab12Ab12Ab12Ab12Ab12wx";

    #[test]
    fn a_whole_key_is_cut_to_its_hint_wherever_it_stands() {
        assert_eq!(keys(&format!("no route for /v1/{KEY}/x")), "no route for /v1/zv_Ab12…12wx/x");
        assert_eq!(keys(&format!("team {KEY}, team {KEY}")), "team zv_Ab12…12wx, team zv_Ab12…12wx");
        assert_eq!(keys(&format!("{KEY}{KEY}")), "zv_Ab12…12wxzv_Ab12…12wx");
        assert_eq!(keys(&format!("é {KEY}ü")), "é zv_Ab12…12wxü");
    }

    #[test]
    fn part_of_a_key_is_cut_whole_and_short_words_are_left_alone() {
        assert_eq!(keys(&KEY[..34]), "zv_…");
        assert_eq!(keys("zv_short, zv_, zv_é and zv_snake_case"), "zv_short, zv_, zv_é and zv_snake_case");
        assert_eq!(keys("plain ünïcode text"), "plain ünïcode text");
    }

    #[test]
    fn a_key_ending_in_the_prefix_letters_keeps_its_own_hint() {
        let key = "zv_Ab12Ab12Ab12Ab12Ab12Ab12Ab12Ab12Ab12zv";
        assert_eq!(keys(&format!("{key}_x")), "zv_Ab12…12zv_x");
    }
}
