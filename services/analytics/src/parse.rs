//! What an event's user agent, referrer and page URL say about its visit: browser, operating
//! system and device class, the source of the visit, and its UTM parameters.
//!
//! User agents are read by `woothee`: pure Rust, its rules compiled in (no data file to ship) and a
//! few microseconds a parse, which ingestion's rate needs. Its names are mapped to a small, stable
//! set so that breakdowns do not split one browser across versions or spellings. Pure: no I/O.

use url::Url;

const UNKNOWN: &str = "Unknown";

/// Browser, operating system and device class of a user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub browser: String,
    pub os: String,
    pub device: String,
}

pub fn client(user_agent: &str) -> Client {
    // woothee compiles its rules once into its own statics, so a parser costs nothing to make.
    let Some(parsed) = woothee::parser::Parser::new().parse(user_agent) else {
        return Client { browser: UNKNOWN.into(), os: UNKNOWN.into(), device: UNKNOWN.into() };
    };
    let browser = match parsed.name {
        "SamsungBrowser" => "Samsung Internet",
        "UNKNOWN" | "" => UNKNOWN,
        name => name,
    };
    // woothee names Windows and macOS by release, and iOS by device: one name each keeps them whole.
    let os = match parsed.os {
        "Windows Phone OS" => "Windows Phone",
        os if os.starts_with("Windows") => "Windows",
        "Mac OSX" | "Mac OS Classic" => "macOS",
        "iPhone" | "iPad" | "iPod" | "iOS" => "iOS",
        "UNKNOWN" | "" => UNKNOWN,
        os => os,
    };
    // woothee counts tablets as smartphones; Android tablets are the ones whose browser leaves out
    // "Mobile". iPadOS Safari by default poses as a Mac, so those iPads count as desktops.
    let tablet = parsed.os == "iPad" || (parsed.os == "Android" && !user_agent.contains("Mobile"));
    let device = match parsed.category {
        _ if tablet => "Tablet",
        "pc" => "Desktop",
        "smartphone" | "mobilephone" => "Mobile",
        _ => UNKNOWN,
    };
    Client { browser: browser.into(), os: os.into(), device: device.into() }
}

/// Well-known referrers and the source name shown for them. An entry matches its host and that
/// host's subdomains; an entry without a dot matches the name under any country ending too
/// (google.de, google.co.uk, yandex.com.tr), as search engines run one site per country.
const SOURCES: &[(&str, &str)] = &[
    ("google", "Google"),
    ("bing.com", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("yahoo", "Yahoo!"),
    ("baidu.com", "Baidu"),
    ("yandex", "Yandex"),
    ("ya.ru", "Yandex"),
    ("ecosia.org", "Ecosia"),
    ("qwant.com", "Qwant"),
    ("search.brave.com", "Brave"),
    ("startpage.com", "Startpage"),
    ("naver.com", "Naver"),
    ("facebook.com", "Facebook"),
    ("fb.me", "Facebook"),
    ("instagram.com", "Instagram"),
    ("threads.net", "Threads"),
    ("t.co", "Twitter"),
    ("twitter.com", "Twitter"),
    ("x.com", "Twitter"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("reddit.com", "Reddit"),
    ("news.ycombinator.com", "Hacker News"),
    ("github.com", "GitHub"),
    ("youtube.com", "YouTube"),
    ("youtu.be", "YouTube"),
    ("pinterest", "Pinterest"),
    ("pin.it", "Pinterest"),
    ("tiktok.com", "TikTok"),
    ("wikipedia.org", "Wikipedia"),
    ("mastodon.social", "Mastodon"),
    ("chatgpt.com", "ChatGPT"),
    ("chat.openai.com", "ChatGPT"),
    ("perplexity.ai", "Perplexity"),
];

/// Where a visit came from: `utm_source` when present, else a well-known source's name, else the
/// referrer's host without `www.`; empty (direct) with no referrer, or one on the site itself.
pub fn source(referrer: &str, page: &Url, utm_source: &str) -> String {
    let utm_source = utm_source.trim();
    if !utm_source.is_empty() {
        return utm_source.to_owned();
    }
    let Some(referrer) = Url::parse(referrer).ok() else { return String::new() };
    let Some(host) = referrer.host_str().map(|h| h.trim_start_matches("www.")) else { return String::new() };
    // A visitor moving between the site's own pages is not a new source.
    if host.is_empty() || Some(host) == page.host_str().map(|own| own.trim_start_matches("www.")) {
        return String::new();
    }
    let site = without_country_ending(host);
    let known = SOURCES.iter().find(|(entry, _)| {
        let against = if entry.contains('.') { host } else { site };
        // Whole labels only, so notgoogle.com is not Google.
        against.strip_suffix(entry).is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
    });
    known.map_or_else(|| host.to_owned(), |(_, name)| (*name).to_owned())
}

/// `host` less its last label and a `co` or `com` before it: "www.google.co.uk" → "www.google".
fn without_country_ending(host: &str) -> &str {
    let rest = host.rsplit_once('.').map_or(host, |(rest, _)| rest);
    rest.strip_suffix(".co").or_else(|| rest.strip_suffix(".com")).unwrap_or(rest)
}

/// `utm_source`, `utm_medium`, `utm_campaign` of a page URL; empty when absent, trimmed, and cut
/// to 200 characters so that a hostile link cannot bloat every row of its visit.
pub struct Utm {
    pub source: String,
    pub medium: String,
    pub campaign: String,
}

pub fn utm(page: &Url) -> Utm {
    let mut utm = Utm { source: String::new(), medium: String::new(), campaign: String::new() };
    for (name, value) in page.query_pairs() {
        let slot = match name.as_ref() {
            "utm_source" => &mut utm.source,
            "utm_medium" => &mut utm.medium,
            "utm_campaign" => &mut utm.campaign,
            _ => continue,
        };
        *slot = value.trim().chars().take(200).collect();
    }
    utm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple(ua: &str) -> (String, String, String) {
        let c = client(ua);
        (c.browser, c.os, c.device)
    }

    #[test]
    fn clients_are_named_plainly() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                ("Chrome", "Windows", "Desktop"),
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                ("Safari", "iOS", "Mobile"),
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                ("Safari", "iOS", "Tablet"),
            ),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", ("Firefox", "Linux", "Desktop")),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                ("Edge", "Windows", "Desktop"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                ("Chrome", "Android", "Mobile"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                ("Chrome", "Android", "Tablet"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
                ("Samsung Internet", "Android", "Mobile"),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                ("Safari", "macOS", "Desktop"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
                ("Opera", "Windows", "Desktop"),
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                ("Chrome", "ChromeOS", "Desktop"),
            ),
            ("", ("Unknown", "Unknown", "Unknown")),
            ("something-unheard-of", ("Unknown", "Unknown", "Unknown")),
        ];
        for (ua, (browser, os, device)) in cases {
            assert_eq!(triple(ua), (browser.to_owned(), os.to_owned(), device.to_owned()), "{ua}");
        }
    }

    #[test]
    fn sources_are_classified() {
        let page = Url::parse("https://www.shop.example/a?utm_source=newsletter").unwrap();
        let source = |referrer: &str, utm: &str| super::source(referrer, &page, utm);
        assert_eq!(source("https://google.com/", ""), "Google");
        assert_eq!(source("https://www.google.co.uk/search?q=x", ""), "Google");
        assert_eq!(source("https://yandex.com.tr/", ""), "Yandex");
        assert_eq!(source("https://t.co/abc", ""), "Twitter");
        assert_eq!(source("https://x.com/someone", ""), "Twitter");
        assert_eq!(source("https://l.facebook.com/l.php?u=x", ""), "Facebook");
        assert_eq!(source("https://news.ycombinator.com/item?id=1", ""), "Hacker News");
        assert_eq!(source("https://shop.example/other", ""), "", "the site itself, without www.");
        assert_eq!(source("https://www.shop.example/other", ""), "", "the site itself");
        assert_eq!(source("", ""), "");
        assert_eq!(source("not a url", ""), "");
        assert_eq!(source("https://www.google.com/", "newsletter"), "newsletter");
        assert_eq!(source("", " newsletter "), "newsletter");
        assert_eq!(source("https://www.blog.example.org/post", ""), "blog.example.org");
        assert_eq!(source("https://notgoogle.com/", ""), "notgoogle.com");
        assert_eq!(source("https://google.evil.example/", ""), "google.evil.example");
        assert_eq!(source("https://box.com/", ""), "box.com");
    }

    #[test]
    fn utm_parameters_are_read() {
        let page =
            Url::parse("https://a.example/?utm_source=news&utm_medium=%20email%20&utm_campaign=fall+sale&x=1").unwrap();
        let utm = utm(&page);
        assert_eq!((utm.source.as_str(), utm.medium.as_str(), utm.campaign.as_str()), ("news", "email", "fall sale"));

        let none = super::utm(&Url::parse("https://a.example/?x=1").unwrap());
        assert_eq!((none.source, none.medium, none.campaign), (String::new(), String::new(), String::new()));

        let long = super::utm(&Url::parse(&format!("https://a.example/?utm_campaign={}", "é".repeat(300))).unwrap());
        assert_eq!(long.campaign, "é".repeat(200));
    }
}
