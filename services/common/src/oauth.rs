//! OAuth rules that both the gateway (which shows the consent page) and identity (which records
//! the consent) apply.

/// Whether a client that registered `registered` may be sent back to `asked`: the same URI, or
/// for a loopback address written as an IP literal (`http://127.0.0.1`, `http://[::1]`) the
/// same URI on any port, since a native app listens on whatever port it was given when it
/// starts (RFC 8252 §7.3; README, "OAuth security").
pub fn redirect_uri_registered(registered: &[String], asked: &str) -> bool {
    registered
        .iter()
        .any(|uri| uri == asked || loopback_without_port(uri).is_some_and(|r| Some(r) == loopback_without_port(asked)))
}

/// A loopback IP-literal `http` URI without its port: its host and what follows the port.
fn loopback_without_port(uri: &str) -> Option<(&str, &str)> {
    ["http://127.0.0.1", "http://[::1]"].into_iter().find_map(|host| {
        let after = uri.strip_prefix(host)?;
        let rest = match after.strip_prefix(':') {
            Some(port) => {
                let rest = port.trim_start_matches(|c: char| c.is_ascii_digit());
                // A port as a browser writes it, so that the code goes to the very address
                // asked: 1 to 65535, without a leading zero (`:09999` would be sent to `:9999`).
                let digits = &port[..port.len() - rest.len()];
                let valid = !digits.starts_with('0') && digits.parse::<u16>().is_ok_and(|n| n > 0);
                if !valid {
                    return None;
                }
                rest
            }
            None => after,
        };
        (rest.is_empty() || rest.starts_with(['/', '?'])).then_some((host, rest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(registered: &str, asked: &str) -> bool {
        redirect_uri_registered(&[registered.to_owned()], asked)
    }

    #[test]
    fn a_loopback_ip_redirect_may_come_back_on_any_port() {
        assert!(allows("http://127.0.0.1:9999/cb", "http://127.0.0.1:8888/cb"));
        assert!(allows("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb"));
        assert!(allows("http://[::1]:80/cb?x=1", "http://[::1]:3000/cb?x=1"));
    }

    #[test]
    fn anything_else_about_the_redirect_must_be_the_same() {
        assert!(!allows("http://127.0.0.1:9999/cb", "http://127.0.0.1:9999/other"));
        assert!(!allows("http://127.0.0.1:9999/cb", "http://[::1]:9999/cb"));
        assert!(!allows("http://127.0.0.1:9999/cb", "http://127.0.0.1.evil.example:9999/cb"));
        assert!(!allows("http://127.0.0.1:9999/cb", "http://127.0.0.1:99x/cb"));
        assert!(!allows("http://127.0.0.1:9999/cb", "http://127.0.0.1:99999/cb"));
        assert!(!allows("http://127.0.0.1:9999/cb", "http://127.0.0.1:09999/cb"));
        assert!(!allows("http://127.0.0.1:9999/cb", "http://127.0.0.1:/cb"));
        assert!(!allows("http://localhost:9999/cb", "http://localhost:8888/cb"));
        assert!(!allows("https://app.example/cb", "https://app.example:444/cb"));
        assert!(allows("https://app.example/cb", "https://app.example/cb"));
    }
}
