//! Realistic made-up traffic, for `--demo`, `zenovay admin generate-events` and the benchmarks.
//!
//! Visits arrive with a daily rhythm (quiet at night, busy in the afternoon, slower weekends);
//! each views 1–8 pages chosen with a long-tailed popularity, a few seconds to minutes apart,
//! mostly with an engagement event as each page is left, and sometimes ends in a custom event;
//! sources, countries and browsers follow fixed weights. The same seed gives the same events.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::events::Incoming;

const USER_AGENTS: [(&str, u32); 8] = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        34,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        18,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
        15,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        12,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", 7),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
        8,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        4,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        2,
    ),
];

const REFERRERS: [(&str, u32); 9] = [
    ("", 35),
    ("https://www.google.com/", 30),
    ("https://www.bing.com/", 5),
    ("https://duckduckgo.com/", 4),
    ("https://t.co/x1", 6),
    ("https://news.ycombinator.com/item?id=1", 5),
    ("https://github.com/zenovay", 5),
    ("https://www.reddit.com/r/analytics", 5),
    ("https://blog.example.org/post", 5),
];

const COUNTRIES: [(&str, u32); 10] =
    [("US", 30), ("DE", 12), ("GB", 10), ("FR", 9), ("IN", 8), ("NL", 6), ("CA", 6), ("BR", 7), ("JP", 7), ("ES", 5)];

const PAGES: [&str; 16] = [
    "/",
    "/pricing",
    "/blog",
    "/docs",
    "/docs/getting-started",
    "/docs/api",
    "/blog/launch",
    "/blog/privacy-first-analytics",
    "/features",
    "/about",
    "/contact",
    "/signup",
    "/login",
    "/changelog",
    "/careers",
    "/blog/plausible-migration",
];

/// Relative traffic of each hour of the day.
const HOURLY: [u32; 24] = [2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 10, 10, 10, 11, 12, 12, 11, 10, 9, 8, 7, 5, 4, 3];

fn weighted<'a>(rng: &mut StdRng, choices: &'a [(&'a str, u32)]) -> &'a str {
    choices.choose_weighted(rng, |c| c.1).map(|c| c.0).unwrap_or_default()
}

/// A page with Zipf-like popularity: the first pages take most views.
fn page(rng: &mut StdRng) -> &'static str {
    let x: f64 = rng.r#gen::<f64>().powi(3);
    PAGES[((x * PAGES.len() as f64) as usize).min(PAGES.len() - 1)]
}

/// About `events` events for `domain` over the `days` days before `end_ms`, in time order.
pub fn traffic(domain: &str, end_ms: i64, days: u32, events: u64, seed: u64) -> impl Iterator<Item = (i64, Incoming)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let domain = domain.to_owned();
    let start = end_ms - i64::from(days) * 86_400_000;
    // About 5.1 events per visit on average: 3.2 pageviews, and engagement after most.
    let visits = (events as f64 / 5.1).ceil() as u64;
    let hour_total: u32 = HOURLY.iter().sum();
    let mut starts: Vec<i64> = (0..visits)
        .map(|_| {
            let day = rng.gen_range(0..i64::from(days.max(1)));
            let mut pick = rng.gen_range(0..hour_total);
            let hour = HOURLY
                .iter()
                .position(|w| {
                    pick < *w || {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(12) as i64;
            start + day * 86_400_000 + hour * 3_600_000 + rng.gen_range(0..3_600_000)
        })
        .filter(|t| *t < end_ms)
        .collect();
    starts.sort_unstable();
    let mut pending: Vec<(i64, Incoming)> = Vec::new();
    let mut next = 0;
    std::iter::from_fn(move || {
        // Emit in time order: expand visits whose start is before the earliest pending event.
        while next < starts.len() && pending.last().is_none_or(|(t, _)| starts[next] <= *t) {
            let at = starts[next];
            next += 1;
            let visitor = rng.gen_range(0..(visits / 2).max(1));
            let user_agent = weighted(&mut rng, &USER_AGENTS).to_owned();
            let referrer = weighted(&mut rng, &REFERRERS);
            let campaign = rng.gen_bool(0.05).then_some(
                "?utm_source=newsletter&utm_medium=email&utm_campaign=autumn&utm_content=header&utm_term=analytics",
            );
            let country = weighted(&mut rng, &COUNTRIES).to_owned();
            let views = 1 + (rng.r#gen::<f64>().powi(2) * 8.0) as u32;
            let mut t = at;
            for i in 0..views {
                let path = if i == 0 { PAGES[rng.gen_range(0..3)] } else { page(&mut rng) };
                let url = format!("https://{domain}{path}{}", if i == 0 { campaign.unwrap_or_default() } else { "" });
                let event = |name: &str| Incoming {
                    domain: domain.clone(),
                    name: name.to_owned(),
                    url: url.clone(),
                    referrer: if i == 0 { referrer.to_owned() } else { String::new() },
                    props_json: String::new(),
                    revenue_json: String::new(),
                    user_agent: user_agent.clone(),
                    client_ip: format!("10.{}.{}.{}", visitor >> 16 & 255, visitor >> 8 & 255, visitor & 255),
                    country: country.clone(),
                    hash_mode: false,
                    scroll_depth: None,
                    engagement_ms: None,
                    non_interactive: false,
                };
                pending.push((t, event("pageview")));
                if path == "/signup" && rng.gen_bool(0.4) {
                    // A plan by visitor, so that a custom property has values to break down.
                    let plan = ["starter", "business", "enterprise"][(visitor % 3) as usize];
                    let props_json = format!(r#"{{"plan":"{plan}"}}"#);
                    pending.push((t + 5_000, Incoming { props_json, ..event("Signup") }));
                }
                let next = t + rng.gen_range(5_000..240_000);
                // As Plausible's tracker, mostly: an engagement event as the page is left.
                if rng.gen_bool(0.6) {
                    let engagement = Incoming {
                        scroll_depth: Some(rng.gen_range(0..=100)),
                        engagement_ms: Some(rng.gen_range(500..(next - t))),
                        ..event("engagement")
                    };
                    pending.push((next - 1_000, engagement));
                }
                t = next;
            }
            pending.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        }
        pending.pop()
    })
    .take_while(move |(t, _)| *t < end_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_ordered_sized_and_repeatable() {
        let end = 1_790_000_000_000;
        let events: Vec<_> = traffic("a.example", end, 30, 10_000, 7).collect();
        assert!((8_000..12_000).contains(&events.len()), "{}", events.len());
        assert!(events.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
        assert!(events.iter().all(|(t, _)| (end - 30 * 86_400_000..end).contains(t)));
        let again: Vec<_> = traffic("a.example", end, 30, 10_000, 7).map(|(t, e)| (t, e.url)).collect();
        assert_eq!(again, events.iter().map(|(t, e)| (*t, e.url.clone())).collect::<Vec<_>>());
    }
}
