//! What an event's user agent, referrer and page URL say about its visit: browser, operating
//! system and device class (parsed by `woothee`, whose rules are compiled in), the source of the
//! visit, and its UTM parameters. Names are normalised so breakdowns stay stable.

use url::Url;

/// Browser, operating system and device class of a user agent.
pub struct Client {
    pub browser: String,
    pub os: String,
    pub device: String,
}

const UNKNOWN: &str = "Unknown";

pub fn client(user_agent: &str) -> Client {
    static PARSER: std::sync::LazyLock<woothee::parser::Parser> =
        std::sync::LazyLock::new(woothee::parser::Parser::new);
    let Some(parsed) = PARSER.parse(user_agent) else {
        return Client { browser: UNKNOWN.into(), os: UNKNOWN.into(), device: UNKNOWN.into() };
    };
    // woothee reads Samsung Internet and Edge's newer tokens as Chrome or Safari.
    let browser = if user_agent.contains("SamsungBrowser/") {
        "Samsung Internet"
    } else if user_agent.contains("Edg/") || user_agent.contains("EdgA/") || user_agent.contains("EdgiOS/") {
        "Edge"
    } else {
        match parsed.name {
            "UNKNOWN" | "" => UNKNOWN,
            name => name,
        }
    };
    let os = match parsed.os {
        os if os.starts_with("Windows") => "Windows",
        "Mac OSX" | "Mac OS Classic" => "macOS",
        "iPhone" | "iPad" | "iPod" | "iOS" => "iOS",
        "Android" => "Android",
        "Linux" => "Linux",
        "ChromeOS" => "ChromeOS",
        "UNKNOWN" | "" => UNKNOWN,
        other => other,
    };
    let tablet = parsed.os == "iPad" || (parsed.os == "Android" && !user_agent.contains("Mobile"));
    let device = match parsed.category {
        _ if tablet => "Tablet",
        "pc" => "Desktop",
        "smartphone" | "mobilephone" => "Mobile",
        _ => UNKNOWN,
    };
    Client { browser: browser.into(), os: os.into(), device: device.into() }
}

/// Well-known referrers by host suffix, and the source name shown for them.
const SOURCES: [(&str, &str); 24] = [
    ("google.", "Google"),
    ("bing.com", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("yahoo.", "Yahoo!"),
    ("baidu.com", "Baidu"),
    ("yandex.", "Yandex"),
    ("ecosia.org", "Ecosia"),
    ("qwant.com", "Qwant"),
    ("search.brave.com", "Brave"),
    ("facebook.com", "Facebook"),
    ("fb.me", "Facebook"),
    ("instagram.com", "Instagram"),
    ("t.co", "Twitter"),
    ("twitter.com", "Twitter"),
    ("x.com", "Twitter"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("reddit.com", "Reddit"),
    ("news.ycombinator.com", "Hacker News"),
    ("github.com", "GitHub"),
    ("youtube.com", "YouTube"),
    ("pinterest.", "Pinterest"),
    ("mastodon.social", "Mastodon"),
    ("chatgpt.com", "ChatGPT"),
];

/// Where a visit came from: `utm_source` when present, a well-known source's name, or the
/// referrer's host without `www.`; empty (direct) with no referrer or a referrer on the site
/// itself.
pub fn source(referrer: &str, page: &Url, utm_source: &str) -> String {
    if !utm_source.is_empty() {
        return utm_source.to_owned();
    }
    let Some(host) = Url::parse(referrer).ok().and_then(|r| r.host_str().map(str::to_ascii_lowercase)) else {
        return String::new();
    };
    let host = host.trim_start_matches("www.");
    if Some(host) == page.host_str().map(|own| own.trim_start_matches("www.")) {
        return String::new();
    }
    let known = SOURCES.iter().find(|(pattern, _)| {
        // "google." matches google.com and google.co.uk; "t.co" only t.co and its subdomains.
        if pattern.ends_with('.') {
            host.starts_with(pattern) || host.contains(&format!(".{pattern}"))
        } else {
            host == *pattern || host.ends_with(&format!(".{pattern}"))
        }
    });
    known.map_or_else(|| host.to_owned(), |(_, name)| (*name).to_owned())
}

/// `utm_source`, `utm_medium`, `utm_campaign` of a page URL; empty when absent.
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
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
                ("Samsung Internet", "Android", "Mobile"),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                ("Safari", "macOS", "Desktop"),
            ),
            ("curl-ish thing", ("Unknown", "Unknown", "Unknown")),
        ];
        for (ua, (browser, os, device)) in cases {
            assert_eq!(triple(ua), (browser.to_owned(), os.to_owned(), device.to_owned()), "{ua}");
        }
    }

    #[test]
    fn sources_are_classified() {
        let page = Url::parse("https://www.shop.example/a?utm_source=newsletter").unwrap();
        let source = |referrer: &str, utm: &str| super::source(referrer, &page, utm);
        assert_eq!(source("https://www.google.com/search?q=x", ""), "Google");
        assert_eq!(source("https://www.google.co.uk/", ""), "Google");
        assert_eq!(source("https://t.co/abc", ""), "Twitter");
        assert_eq!(source("https://news.ycombinator.com/item?id=1", ""), "Hacker News");
        assert_eq!(source("https://shop.example/other", ""), "", "the site itself");
        assert_eq!(source("", ""), "");
        assert_eq!(source("https://www.google.com/", "newsletter"), "newsletter");
        assert_eq!(source("https://www.blog.example.org/post", ""), "blog.example.org");
        assert_eq!(source("https://notgoogle.com/", ""), "notgoogle.com");
    }

    #[test]
    fn utm_parameters_are_read() {
        let page =
            Url::parse("https://a.example/?utm_source=news&utm_medium=%20email%20&utm_campaign=fall&x=1").unwrap();
        let utm = utm(&page);
        assert_eq!((utm.source.as_str(), utm.medium.as_str(), utm.campaign.as_str()), ("news", "email", "fall"));
        let none = super::utm(&Url::parse("https://a.example/").unwrap());
        assert_eq!((none.source, none.medium, none.campaign), (String::new(), String::new(), String::new()));
    }
}
