//! Secrets kept out of what the services write: a client may send its key or token where
//! something else belongs (in a path, as a field name, a team id, a tool's name, a JSON-RPC
//! method, a request id), and error messages and log lines quote what clients send. Every log
//! line passes through here on its way out (`lines`), and the gateway cuts the texts of its
//! answers (docs/behaviour.md#api-keys).

use std::borrow::Cow;

/// What every personal API key starts with.
pub const KEY_PREFIX: &str = "zv_";
/// What the other secrets the product hands out start with: session tokens, OAuth
/// authorization codes, MCP access tokens and refresh tokens. They have no hint, so a run after
/// one of these is cut whole.
const TOKEN_PREFIXES: [&str; 4] = ["zvs_", "zvc_", "zvm_", "zvr_"];
/// What every prefix above starts with.
const STEM: &str = "zv";
/// A whole key has 38 characters after its prefix; from this many on, a run of letters and digits
/// after a prefix is taken for a secret, or for most of one: 31 of a key's 32 random characters
/// leave a few dozen guesses.
const KEY_LIKE: usize = 12;
/// A run this long after [`KEY_PREFIX`] is a whole key (or more), shown by its hint as the
/// product shows keys.
const WHOLE_KEY: usize = 32;

/// `text` with anything shaped like a secret (a prefix above and 12 or more letters and digits)
/// cut: a whole key to its hint `zv_Ab12…wxyz`, any other run to its prefix and `…`. A secret
/// written percent-encoded (a path `/v1/zv_%41b12…`) is one to whoever decodes it: a text that
/// holds one once decoded is shown decoded, with it cut.
pub fn secrets(text: &str) -> Cow<'_, str> {
    if text.contains('%') {
        let mut decoded = Cow::Borrowed(text);
        // A text encoded twice hides a secret from one decoding.
        for _ in 0..3 {
            let next = percent_encoding::percent_decode_str(&decoded).decode_utf8_lossy().into_owned();
            if next == decoded {
                break;
            }
            decoded = Cow::Owned(next);
            let cut = plain_secrets(&decoded);
            if cut != decoded {
                return Cow::Owned(cut.into_owned());
            }
        }
    }
    plain_secrets(text)
}

/// [`secrets`] of the text as it is written.
fn plain_secrets(text: &str) -> Cow<'_, str> {
    if !text.contains(STEM) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(STEM) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let Some(prefix) = std::iter::once(KEY_PREFIX).chain(TOKEN_PREFIXES).find(|p| from.starts_with(p)) else {
            out.push_str(STEM);
            rest = &from[STEM.len()..];
            continue;
        };
        let body = &from[prefix.len()..];
        let mut run = alphanumeric_run(body);
        // A secret written right after another: the next one's prefix starts inside this run.
        if let Some(next) = (0..run).find(|&i| next_secret_at(&body[i..])) {
            run = next;
        }
        out.push_str(prefix);
        if prefix == KEY_PREFIX && run >= WHOLE_KEY {
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

/// Whether `text` starts with a prefix and a run long enough to be cut.
fn next_secret_at(text: &str) -> bool {
    std::iter::once(KEY_PREFIX)
        .chain(TOKEN_PREFIXES)
        .any(|prefix| text.strip_prefix(prefix).is_some_and(|body| alphanumeric_run(body) >= KEY_LIKE))
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
        assert_eq!(secrets(&format!("no route for /v1/{KEY}/x")), "no route for /v1/zv_Ab12…12wx/x");
        assert_eq!(secrets(&format!("team {KEY}, team {KEY}")), "team zv_Ab12…12wx, team zv_Ab12…12wx");
        assert_eq!(secrets(&format!("{KEY}{KEY}")), "zv_Ab12…12wxzv_Ab12…12wx");
        assert_eq!(secrets(&format!("é {KEY}ü")), "é zv_Ab12…12wxü");
    }

    #[test]
    fn part_of_a_key_is_cut_whole_and_short_words_are_left_alone() {
        assert_eq!(secrets(&KEY[..34]), "zv_…");
        assert_eq!(secrets("zv_short, zv_, zv_é and zv_snake_case"), "zv_short, zv_, zv_é and zv_snake_case");
        assert_eq!(secrets("plain ünïcode text"), "plain ünïcode text");
    }

    #[test]
    fn session_and_oauth_tokens_are_cut_whole() {
        let token = "zvs_zp9AC2G3abcdefghijklmnopqrstuvwxyzABCDEFGkqEmn";
        assert_eq!(secrets(&format!("/api/v1/websites/{token}")), "/api/v1/websites/zvs_…");
        for prefix in ["zvc_", "zvm_", "zvr_"] {
            assert_eq!(
                secrets(&format!("unknown tool {prefix}Gm0123456789abcdef0ai")),
                format!("unknown tool {prefix}…")
            );
        }
        assert_eq!(secrets(&format!("{token}{KEY}")), "zvs_…zv_Ab12…12wx");
        assert_eq!(
            secrets("zvt_public1234567, zvs_short, zvx_Ab12Ab12Ab12Ab12"),
            "zvt_public1234567, zvs_short, zvx_Ab12Ab12Ab12Ab12"
        );
    }

    #[test]
    fn a_percent_encoded_key_is_cut_as_the_key_it_decodes_to() {
        let encoded = format!("/v1/zv_%41b12{}", &KEY[7..]);
        assert_eq!(secrets(&format!("no route for {encoded}")), "no route for /v1/zv_Ab12…12wx");
        let prefix_too = format!("/v1/%7Av_{}", &KEY[3..]);
        assert_eq!(secrets(&prefix_too), "/v1/zv_Ab12…12wx");
        let twice = format!("/v1/zv_%2541b12{}", &KEY[7..]);
        assert_eq!(secrets(&twice), "/v1/zv_Ab12…12wx");
        assert_eq!(secrets("/a%20b/zv_short?q=%7A"), "/a%20b/zv_short?q=%7A", "no secret: left as written");
        assert_eq!(secrets("100% sure"), "100% sure");
    }

    #[test]
    fn a_key_ending_in_the_prefix_letters_keeps_its_own_hint() {
        let key = "zv_Ab12Ab12Ab12Ab12Ab12Ab12Ab12Ab12Ab12zv";
        assert_eq!(secrets(&format!("{key}_x")), "zv_Ab12…12zv_x");
    }
}
