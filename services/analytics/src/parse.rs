//! What an event's user agent, referrer and page URL say about its visit: browser, operating
//! system and device class, the source of the visit, and its UTM parameters.
//!
//! User agents are read by `woothee`: pure Rust, its rules compiled in (no data file to ship) and a
//! few microseconds a parse, which ingestion's rate needs. Its names are mapped to a small, stable
//! set so that breakdowns do not split one browser across versions or spellings. Pure: no I/O.

use url::Url;

/// What a user agent does not tell: stored empty, as Plausible stores it, and shown as
/// `(not set)`.
const UNKNOWN: &str = "";

/// Browser, operating system and device class of a user agent, and the versions of the first two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub browser: String,
    pub os: String,
    pub device: String,
    pub browser_version: String,
    pub os_version: String,
}

/// `major.minor` of a version such as `126.0.6478.126` or `10_15_7`; empty without one.
fn major_minor(version: &str) -> String {
    let parts: Vec<&str> = version.split(['.', '_']).filter(|p| !p.is_empty()).take(2).collect();
    match parts.first() {
        Some(major) if major.bytes().all(|b| b.is_ascii_digit()) => parts.join("."),
        _ => UNKNOWN.into(),
    }
}

pub fn client(user_agent: &str) -> Client {
    // woothee compiles its rules once into its own statics, so a parser costs nothing to make.
    let Some(parsed) = woothee::parser::Parser::new().parse(user_agent) else {
        return Client {
            browser: UNKNOWN.into(),
            os: UNKNOWN.into(),
            device: UNKNOWN.into(),
            browser_version: UNKNOWN.into(),
            os_version: UNKNOWN.into(),
        };
    };
    // Windows is versioned by release ("Windows 10"), the others by number; woothee leaves out
    // some Macs' number, which their user agent holds ("Intel Mac OS X 14.5", "10_15_7").
    let os_version = match parsed.os.strip_prefix("Windows ") {
        Some(release) if parsed.os != "Windows Phone OS" => release.trim_start_matches("NT ").to_owned(),
        _ if parsed.os == "Mac OSX" && major_minor(&parsed.os_version).is_empty() => user_agent
            .split_once("Mac OS X ")
            .map(|(_, rest)| major_minor(rest.split([';', ')', ' ']).next().unwrap_or_default()))
            .unwrap_or_default(),
        _ => major_minor(&parsed.os_version),
    };
    let browser_version = major_minor(parsed.version);
    // Named as Plausible names them (device-detector's names), so that its clients' filters
    // (`visit:browser==Microsoft Edge`) find them.
    let browser = match parsed.name {
        "SamsungBrowser" => "Samsung Browser",
        "Edge" => "Microsoft Edge",
        "Webview" => "Mobile App",
        "UNKNOWN" | "" => UNKNOWN,
        name => name,
    };
    // woothee names Windows and macOS by release, and iOS by device: one name each keeps them whole.
    let os = match parsed.os {
        "Windows Phone OS" => "Windows Phone",
        os if os.starts_with("Windows") => "Windows",
        "Mac OSX" | "Mac OS Classic" => "Mac",
        "iPhone" | "iPad" | "iPod" | "iOS" => "iOS",
        "Linux" => "GNU/Linux",
        "ChromeOS" => "Chrome OS",
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
    Client { browser: browser.into(), os: os.into(), device: device.into(), browser_version, os_version }
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
    ("discord.com", "Discord"),
    ("discordapp.com", "Discord"),
    ("linktr.ee", "Linktree"),
    ("sogou.com", "Sogou"),
    ("ntp.msn.com", "Bing"),
    ("t.me", "Telegram"),
    ("webk.telegram.org", "Telegram"),
    ("statics.teams.cdn.office.net", "Microsoft Teams"),
];

/// `utm_source` shorthands that Plausible maps to a source, as its custom sources do; other
/// tags are matched to the well-known sources by name or host, regardless of case.
const TAGS: &[(&str, &str)] = &[
    ("fb", "Facebook"),
    ("fb-ads", "Facebook"),
    ("fbads", "Facebook"),
    ("fbad", "Facebook"),
    ("facebook-ads", "Facebook"),
    ("facebook_ads", "Facebook"),
    ("fcb", "Facebook"),
    ("facebook_ad", "Facebook"),
    ("facebook_feed_ad", "Facebook"),
    ("ig", "Instagram"),
    ("yt", "Youtube"),
    ("yt-ads", "Youtube"),
    ("youtube", "Youtube"),
    ("reddit-ads", "Reddit"),
    ("google_ads", "Google"),
    ("google-ads", "Google"),
    ("googleads", "Google"),
    ("gads", "Google"),
    ("google ads", "Google"),
    ("adwords", "Google"),
    ("twitter-ads", "Twitter"),
    ("tiktokads", "TikTok"),
    ("tik.tok", "TikTok"),
    ("perplexity", "Perplexity"),
    ("linktree", "Linktree"),
];

/// The source a tag (`utm_source`, `source` or `ref`) names: a shorthand's or a well-known
/// source's name, else the tag as given.
fn tagged_source(tag: &str) -> String {
    let tag_lower = tag.to_lowercase();
    let shorthand = TAGS.iter().find(|(t, _)| *t == tag_lower).map(|(_, name)| name);
    let known = || SOURCES.iter().find(|(host, name)| *host == tag_lower || name.to_lowercase() == tag_lower);
    shorthand.or_else(|| known().map(|(_, name)| name)).map_or_else(|| tag.to_owned(), |name| (*name).to_owned())
}

/// Where a visit came from: its tag (`utm_source`, else `source`, else `ref`, see [`utm`]) when
/// present, named as [`tagged_source`] names it, else a well-known source's name, else the
/// referrer's host without `www.`; empty (direct) without a [`referral`].
pub fn source(referrer: &str, page: &Url, utm_source: &str) -> String {
    let utm_source = utm_source.trim();
    if !utm_source.is_empty() {
        return tagged_source(utm_source);
    }
    let Some((_, host)) = referral(referrer, page) else { return String::new() };
    let site = without_country_ending(&host);
    let known = SOURCES.iter().find(|(entry, _)| {
        let against = if entry.contains('.') { host.as_str() } else { site };
        // Whole labels only, so notgoogle.com is not Google.
        against.strip_suffix(entry).is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
    });
    known.map_or(host.clone(), |(_, name)| (*name).to_owned())
}

/// The referrer's URL and its host without `www.`, when it refers the visitor from elsewhere: not
/// from the site itself (a visitor moving between its pages is not a new source), nor from
/// `localhost`, which Plausible does not count as a referral either. As Plausible's, only web
/// pages and Android apps refer, an app named with its scheme (`android-app://com.example.app`).
pub fn referral(referrer: &str, page: &Url) -> Option<(Url, String)> {
    let url = Url::parse(referrer).ok()?;
    let scheme = match url.scheme() {
        "http" | "https" => "",
        "android-app" => "android-app://",
        _ => return None,
    };
    let host = format!("{scheme}{}", url.host_str()?.trim_start_matches("www."));
    let own = page.host_str().map(|own| own.trim_start_matches("www."));
    (!host.is_empty() && host != "localhost" && Some(host.as_str()) != own).then_some((url, host))
}

/// `host` less its last label and a `co` or `com` before it: "www.google.co.uk" → "www.google".
fn without_country_ending(host: &str) -> &str {
    let rest = host.rsplit_once('.').map_or(host, |(rest, _)| rest);
    rest.strip_suffix(".co").or_else(|| rest.strip_suffix(".com")).unwrap_or(rest)
}

/// The UTM parameters of a page URL; empty when absent, trimmed, and cut to 200 characters so
/// that a hostile link cannot bloat every row of its visit. Also which ad click id it carries.
#[derive(Default)]
pub struct Utm {
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub content: String,
    pub term: String,
    /// `gclid` or `msclkid` when the URL has one: an ad click of Google or Bing.
    pub click_id: &'static str,
    /// The `utm_source` parameter itself, which Plausible's channels read for e-mail and SMS where
    /// `source` stands in for it with a `source` or `ref` parameter.
    pub source_parameter: String,
}

/// The UTM parameters of a page URL. Plausible takes a `source` or `ref` parameter for the
/// `utm_source` when there is none (`?ref=producthunt`).
pub fn utm(page: &Url) -> Utm {
    let mut utm = Utm::default();
    let (mut source, mut reference) = (String::new(), String::new());
    for (name, value) in page.query_pairs() {
        let slot = match name.as_ref() {
            "utm_source" => &mut utm.source,
            "source" => &mut source,
            "ref" => &mut reference,
            "utm_medium" => &mut utm.medium,
            "utm_campaign" => &mut utm.campaign,
            "utm_content" => &mut utm.content,
            "utm_term" => &mut utm.term,
            "gclid" => {
                utm.click_id = "gclid";
                continue;
            }
            "msclkid" => {
                utm.click_id = "msclkid";
                continue;
            }
            _ => continue,
        };
        *slot = value.trim().chars().take(200).collect();
    }
    utm.source_parameter = utm.source.clone();
    if utm.source.is_empty() {
        utm.source = if source.is_empty() { reference } else { source };
    }
    utm
}

/// The visit's `utm_medium`: its parameter, else, for an ad click Plausible recognises (Google's
/// `gclid` from Google, Bing's `msclkid` from Bing), the click id in parentheses, `(gclid)`.
pub fn medium(source: &str, utm: &Utm) -> String {
    match (utm.medium.is_empty(), source, utm.click_id) {
        (true, "Google", "gclid") | (true, "Bing", "msclkid") => format!("({})", utm.click_id),
        _ => utm.medium.clone(),
    }
}

/// The referrer as Plausible shows it: host without `www.` and path without a trailing slash
/// (`news.ycombinator.com/item`); empty without a [`referral`].
pub fn referrer(referrer: &str, page: &Url) -> String {
    let Some((url, host)) = referral(referrer, page) else { return String::new() };
    let path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    format!("{host}{}", path.trim_end_matches('/')).chars().take(2000).collect()
}

/// The page's host as Plausible's `event:hostname` names it: without `www.`.
pub fn hostname(page: &Url) -> String {
    page.host_str().unwrap_or_default().trim_start_matches("www.").to_owned()
}

/// Categories of well-known sources (by lower-case name), as Plausible's channels use them: a
/// subset of Google Analytics' source categories holding the names `source` gives and the
/// commonest `utm_source` values.
const SOURCE_CATEGORIES: &[(&str, Category)] = &[
    ("google", Category::Search),
    ("bing", Category::Search),
    ("duckduckgo", Category::Search),
    ("yahoo!", Category::Search),
    ("yahoo", Category::Search),
    ("baidu", Category::Search),
    ("yandex", Category::Search),
    ("ecosia", Category::Search),
    ("qwant", Category::Search),
    ("brave", Category::Search),
    ("startpage", Category::Search),
    ("naver", Category::Search),
    ("sogou", Category::Search),
    ("facebook", Category::Social),
    ("instagram", Category::Social),
    ("threads", Category::Social),
    ("twitter", Category::Social),
    ("x (twitter)", Category::Social),
    ("linkedin", Category::Social),
    ("reddit", Category::Social),
    ("hacker news", Category::Social),
    ("github", Category::Social),
    ("pinterest", Category::Social),
    ("tiktok", Category::Social),
    ("mastodon", Category::Social),
    ("discord", Category::Social),
    ("telegram", Category::Social),
    ("slack", Category::Social),
    ("producthunt", Category::Social),
    ("bluesky", Category::Social),
    ("vkontakte", Category::Social),
    ("youtube", Category::Video),
    ("vimeo", Category::Video),
    ("twitch", Category::Video),
    ("gmail", Category::Email),
    ("amazon", Category::Shopping),
    ("ebay", Category::Shopping),
    ("etsy", Category::Shopping),
    ("shopify", Category::Shopping),
    ("temu.com", Category::Shopping),
    ("chatgpt", Category::Ai),
    ("chatgpt.com", Category::Ai),
    ("perplexity", Category::Ai),
    ("claude", Category::Ai),
    ("copilot", Category::Ai),
    ("deepseek", Category::Ai),
    ("phind", Category::Ai),
    ("grok", Category::Ai),
    ("google gemini", Category::Ai),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Search,
    Social,
    Video,
    Email,
    Shopping,
    Ai,
}

/// The acquisition channel of a visit, by Plausible's rules, from its source (empty: direct)
/// and UTM parameters, tried in order.
pub fn channel(source: &str, utm: &Utm) -> &'static str {
    let (source, medium, campaign, utm_source) = (
        source.to_lowercase(),
        utm.medium.to_lowercase(),
        utm.campaign.to_lowercase(),
        utm.source_parameter.to_lowercase(),
    );
    let category = SOURCE_CATEGORIES.iter().find(|(name, _)| *name == source).map(|(_, c)| *c);
    let is = |c: Category| category == Some(c);
    let paid = medium.contains("cp") || medium == "ppc" || medium == "retargeting" || medium.starts_with("paid");
    let shopping_campaign = campaign.contains("shopping") || shop_word(&campaign);
    let email_tags = ["email", "e-mail", "e_mail", "e mail", "newsletter"];
    let rules: [(bool, &'static str); 18] = [
        (campaign.contains("cross-network"), "Cross-network"),
        ((is(Category::Shopping) || shopping_campaign) && paid, "Paid Shopping"),
        (
            (is(Category::Search) && paid)
                || (source == "google" && utm.click_id == "gclid")
                || (source == "bing" && utm.click_id == "msclkid"),
            "Paid Search",
        ),
        (is(Category::Social) && paid, "Paid Social"),
        (is(Category::Video) && paid, "Paid Video"),
        (["display", "banner", "expandable", "interstitial", "cpm"].contains(&medium.as_str()), "Display"),
        (paid, "Paid Other"),
        (is(Category::Shopping) || shopping_campaign, "Organic Shopping"),
        (
            is(Category::Social)
                || ["social", "social-network", "social-media", "sm", "social network", "social media"]
                    .contains(&medium.as_str()),
            "Organic Social",
        ),
        (is(Category::Video) || medium.contains("video"), "Organic Video"),
        (is(Category::Ai), "AI Assistants"),
        (is(Category::Search), "Organic Search"),
        (
            is(Category::Email)
                || email_tags.iter().any(|t| utm_source.contains(t))
                || email_tags.iter().any(|t| medium.contains(t)),
            "Email",
        ),
        (medium == "affiliate", "Affiliates"),
        (medium == "audio", "Audio"),
        (utm_source == "sms" || medium == "sms", "SMS"),
        (
            medium.ends_with("push")
                || medium.contains("mobile")
                || medium.contains("notification")
                || source == "firebase",
            "Mobile Push Notifications",
        ),
        (["referral", "app", "link"].contains(&medium.as_str()) || !source.is_empty(), "Referral"),
    ];
    rules.into_iter().find(|(applies, _)| *applies).map_or("Direct", |(_, channel)| channel)
}

/// Whether a campaign names a shop: "shop" at its start or after a character that is not a
/// letter other than `e` (so "shop", "eshop", "summer_shop", but not "workshop").
fn shop_word(campaign: &str) -> bool {
    campaign
        .match_indices("shop")
        .any(|(at, _)| campaign[..at].chars().next_back().is_none_or(|c| !c.is_ascii_lowercase() || c == 'e'))
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
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                ("Firefox", "GNU/Linux", "Desktop"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                ("Microsoft Edge", "Windows", "Desktop"),
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
                ("Samsung Browser", "Android", "Mobile"),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                ("Safari", "Mac", "Desktop"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
                ("Opera", "Windows", "Desktop"),
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                ("Chrome", "Chrome OS", "Desktop"),
            ),
            ("", ("", "", "")),
            ("something-unheard-of", ("", "", "")),
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
        assert_eq!(source("https://t.me/channel", ""), "Telegram");
    }

    #[test]
    fn tags_name_known_sources_as_plausible_does() {
        let page = Url::parse("https://shop.example/").unwrap();
        let source = |utm: &str| super::source("https://news.example/", &page, utm);
        assert_eq!(source("GOOGLE"), "Google");
        assert_eq!(source("ig"), "Instagram");
        assert_eq!(source("adwords"), "Google");
        assert_eq!(source("hacker news"), "Hacker News");
        assert_eq!(source("baidu.com"), "Baidu");
        assert_eq!(source("YT"), "Youtube", "Plausible's custom name, not the referrer's");
        assert_eq!(source("Newsletter"), "Newsletter", "an unknown tag as given");
    }

    #[test]
    fn channels_follow_plausibles_rules() {
        let with = |medium: &str, campaign: &str, source: &str| Utm {
            medium: medium.into(),
            campaign: campaign.into(),
            source: source.into(),
            source_parameter: source.into(),
            ..Utm::default()
        };
        assert_eq!(channel("", &Utm::default()), "Direct");
        assert_eq!(channel("Google", &Utm::default()), "Organic Search");
        assert_eq!(channel("Google", &Utm { click_id: "gclid", ..Utm::default() }), "Paid Search");
        assert_eq!(channel("Facebook", &with("cpc", "", "facebook")), "Paid Social");
        assert_eq!(channel("Hacker News", &Utm::default()), "Organic Social");
        assert_eq!(channel("YouTube", &Utm::default()), "Organic Video");
        assert_eq!(channel("ChatGPT", &Utm::default()), "AI Assistants");
        assert_eq!(channel("newsletter", &with("email", "autumn", "newsletter")), "Email");
        assert_eq!(channel("news.example", &Utm::default()), "Referral");
        assert_eq!(channel("x", &with("banner", "", "x")), "Display");
        assert_eq!(channel("x", &with("", "summer-shop", "x")), "Organic Shopping");
        assert_eq!(channel("x", &with("", "workshop", "x")), "Referral");
        assert_eq!(channel("", &with("", "cross-network-q3", "")), "Cross-network");
    }

    #[test]
    fn only_the_utm_source_parameter_makes_a_visit_email_or_sms() {
        let tagged = |query: &str| {
            let utm = utm(&Url::parse(&format!("https://a.example/?{query}")).unwrap());
            channel(&utm.source.clone(), &utm)
        };
        assert_eq!(tagged("utm_source=newsletter2"), "Email");
        assert_eq!(tagged("source=newsletter2"), "Referral");
        assert_eq!(tagged("ref=sms"), "Referral");
        assert_eq!(tagged("utm_source=sms"), "SMS");
    }

    #[test]
    fn an_ad_click_without_a_medium_is_given_its_click_id_as_plausible_gives_it() {
        let medium = |source: &str, query: &str| {
            super::medium(source, &utm(&Url::parse(&format!("https://a.example/?{query}")).unwrap()))
        };
        assert_eq!(medium("Google", "gclid=abc"), "(gclid)");
        assert_eq!(medium("Bing", "msclkid=abc"), "(msclkid)");
        assert_eq!(medium("Google", "gclid=abc&utm_medium=cpc"), "cpc");
        assert_eq!(medium("Bing", "gclid=abc"), "");
        assert_eq!(medium("Google", ""), "");
    }

    #[test]
    fn versions_and_referrers_are_named_as_plausible_names_them() {
        let c = client(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.126 Safari/537.36",
        );
        assert_eq!((c.browser_version.as_str(), c.os_version.as_str()), ("126.0", "10"));
        let linux = client("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0");
        assert_eq!(linux.os_version, "", "no version: empty, shown (not set)");
        for (ua, version) in [
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0", "14.5"),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "10.15",
            ),
        ] {
            assert_eq!((client(ua).os.as_str(), client(ua).os_version.as_str()), ("Mac", version), "{ua}");
        }
        let page = Url::parse("https://www.shop.example/a").unwrap();
        assert_eq!(referrer("https://www.news.example/item/?id=1", &page), "news.example/item");
        assert_eq!(referrer("https://shop.example/b", &page), "");
        assert_eq!(referrer("", &page), "");
        assert_eq!(referrer("http://localhost:3000/x", &page), "", "not a referral, as in Plausible");
        assert_eq!(referrer("android-app://com.example.reader/", &page), "android-app://com.example.reader");
        assert_eq!(super::source("android-app://com.example.reader/", &page, ""), "android-app://com.example.reader");
        assert_eq!(referrer("ftp://files.example/a", &page), "", "not a web page nor an app");
        assert_eq!(super::source("http://localhost:3000/x", &page, ""), "");
        assert_eq!(hostname(&page), "shop.example");
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

        let tag = |query: &str| super::utm(&Url::parse(&format!("https://a.example/?{query}")).unwrap()).source;
        assert_eq!(tag("ref=producthunt"), "producthunt");
        assert_eq!(tag("ref=producthunt&source=hn"), "hn", "source before ref");
        assert_eq!(tag("source=hn&utm_source=news"), "news", "utm_source first");
    }
}
