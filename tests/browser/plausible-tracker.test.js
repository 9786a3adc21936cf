// Plausible's own tracker (@plausible-analytics/tracker from npm) in a real browser (Debian's
// chromium), in both run modes: five visitors use a small site served by this test, whose pages
// load the tracker and post to the product's /api/event. Every figure the Plausible drop-in answers
// is then compared with what Plausible's definitions give for the requests the browser sent:
// - `engagement` events (sent when a page is left) are not events: they count nowhere, end no
//   visit and lengthen none;
// - a visit bounces when it holds exactly one event other than `engagement`;
// - a visit lasts from its first to its last event other than `engagement`;
// - with hash-based routing the fragment is part of the page (`/app/#/settings`);
// - grouped by page, bounce rate and visit duration are those of the visits that entered there;
// - a custom property is a dimension and a filter (`(none)` for events without it);
// - a goal counts the visitors and events that completed it, `conversion_rate` is its visitors as
//   a percentage (one decimal) of all visitors, and a revenue goal sums its events' revenue.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { CHROMIUM, OPERATOR_TOKEN, startProduct } from "./harness.js";

const require = createRequire(import.meta.url);
const TRACKER = readFileSync(require.resolve("@plausible-analytics/tracker"));
const MODES = (process.env.MODES ?? "all-in-one,split").split(",");
const PASSWORD = "correct horse battery staple";
const OUTBOUND = "https://docs.example.org/start";
const PRICE_LIST = "/files/price-list.pdf";

// Each visitor is a browser of its own (the product tells visitors apart by address and user
// agent, and every one here comes from 127.0.0.1).
const AGENTS = {
  reader: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  signup: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
  buyer: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  appUser: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
  appGlance: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
};

// Goals as Plausible's Sites API names them; `display` is the name Plausible reports them by.
const GOALS = [
  { body: { goal_type: "event", event_name: "Signup" }, display: "Signup", matches: (e) => e.name === "Signup" },
  { body: { goal_type: "event", event_name: "Purchase", currency: "EUR" }, display: "Purchase", matches: (e) => e.name === "Purchase" },
  { body: { goal_type: "event", event_name: "Outbound Link: Click" }, display: "Outbound Link: Click", matches: (e) => e.name === "Outbound Link: Click" },
  { body: { goal_type: "event", event_name: "File Download" }, display: "File Download", matches: (e) => e.name === "File Download" },
  { body: { goal_type: "page", page_path: "/thanks" }, display: "Visit /thanks", matches: (e) => e.name === "pageview" && e.page === "/thanks" },
  { body: { goal_type: "page", page_path: "/app/#/*" }, display: "Visit /app/#/*", matches: (e) => e.name === "pageview" && /^\/app\/#\/[^/]*$/.test(e.page) },
];

// ---------------------------------------------------------------------------------------------
// The site the visitors use: short pages (so that a page is always scrolled 100%), the tracker's
// built module, and a file to download.

function pageHtml({ title, body, domain, endpoint, hashBasedRouting }) {
  const config = { domain, endpoint, hashBasedRouting, outboundLinks: true, fileDownloads: true };
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<!-- The tracker stays quiet in a browser driven by automation unless this is set (as in its own tests). -->
<script>window.__plausible = true;</script>
<script type="module">
import { init, track } from "/tracker/plausible.js";
init(${JSON.stringify(config)});
// What the page itself could read of the answer (a cross-origin answer without CORS is an error).
const done = (result) => window.reportAnswer(result && "status" in result ? result.status : String(result && result.error));
for (const button of document.querySelectorAll("button[data-event]")) {
  button.addEventListener("click", () => {
    const options = JSON.parse(button.dataset.options || "{}");
    track(button.dataset.event, { ...options, callback: done });
  });
}
</script></head><body><h1>${title}</h1>${body}</body></html>`;
}

const PAGES = {
  "/": { title: "Shop", body: `<p>Welcome.</p>` },
  "/pricing": {
    title: "Pricing",
    body: `<button id="signup" data-event="Signup" data-options='${JSON.stringify({ props: { plan: "free", position: "hero" } })}'>Sign up free</button>
<a id="price-list" href="${PRICE_LIST}?v=2" download>Price list</a>
<button id="buy" data-event="Purchase" data-options='${JSON.stringify({ props: { plan: "pro" }, revenue: { amount: 29.9, currency: "EUR" } })}'>Buy Pro</button>
<a id="checkout" href="/thanks">Checkout</a>`,
  },
  "/thanks": { title: "Thanks", body: `<a id="docs" href="${OUTBOUND}">Read the docs</a>` },
  "/app/": {
    title: "App",
    hashBasedRouting: true,
    body: `<button id="upgrade" data-event="Signup" data-options='${JSON.stringify({ props: { plan: "pro", position: "app" } })}'>Upgrade</button>`,
  },
};

async function startSite({ domain, endpoint }) {
  const server = http.createServer((request, response) => {
    const path = new URL(request.url, "http://site").pathname;
    if (path === "/tracker/plausible.js") {
      response.writeHead(200, { "content-type": "text/javascript" });
      response.end(TRACKER);
    } else if (path === PRICE_LIST) {
      response.writeHead(200, { "content-type": "application/pdf", "content-disposition": "attachment" });
      response.end("%PDF-1.4\n%%EOF\n");
    } else if (PAGES[path]) {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      response.end(pageHtml({ ...PAGES[path], hashBasedRouting: Boolean(PAGES[path].hashBasedRouting), domain, endpoint }));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () =>
    new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    });
  // The browsers resolve the site's domain to this server (--host-resolver-rules).
  return { origin: `http://${domain}:${server.address().port}`, close };
}

// ---------------------------------------------------------------------------------------------
// The visitors. Every tracker request the browser makes is written to `ledger` with the time
// window in which the product can have received it: from the start of the action that caused it
// to the moment its answer arrived.

function watch(context, visitor, endpoint, ledger) {
  const inFlight = new Map();
  context.on("request", (request) => {
    if (request.url() !== endpoint) return;
    const entry = {
      visitor,
      payload: JSON.parse(request.postData()),
      contentType: request.headers()["content-type"],
      from: visitor.actionStartedAt,
      to: null,
      status: null,
      cors: null,
      failed: null,
    };
    ledger.push(entry);
    inFlight.set(request, entry);
  });
  context.on("requestfinished", async (request) => {
    const entry = inFlight.get(request);
    if (!entry) return;
    const response = await request.response();
    entry.status = response?.status() ?? null;
    entry.cors = response?.headers()["access-control-allow-origin"] ?? null;
    entry.to = Date.now();
  });
  // A request still under way when its page navigates away is no longer followed by the browser's
  // tooling, though the tracker sends it with `keepalive` and it does arrive.
  context.on("requestfailed", (request) => {
    const entry = inFlight.get(request);
    if (entry) entry.failed = request.failure()?.errorText ?? "failed";
  });
}

async function until(what, predicate, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Runs one visitor's actions in a browser of its own. */
async function visit({ name, site, endpoint, ledger }, script) {
  // The user agent is the browser's own, not only the page's: requests a page sends with
  // `keepalive` as it unloads go out with the browser's, which would be headless Chromium's (a bot).
  const browser = await chromium.launch({
    ...CHROMIUM,
    args: [...CHROMIUM.args, "--host-resolver-rules=MAP *.example.com 127.0.0.1", `--user-agent=${AGENTS[name]}`],
  });
  try {
    await browse({ browser, name, site, endpoint, ledger }, script);
  } finally {
    await browser.close();
  }
}

async function browse({ browser, name, site, endpoint, ledger }, script) {
  const visitor = { name, actionStartedAt: Date.now(), answers: [] };
  const context = await browser.newContext({ userAgent: AGENTS[name], viewport: { width: 1280, height: 800 } });
  await context.exposeFunction("reportAnswer", (answer) => visitor.answers.push(answer));
  watch(context, visitor, endpoint, ledger);
  await context.route("https://docs.example.org/**", (route) => route.fulfill({ contentType: "text/html", body: "<h1>Docs</h1>" }));
  const page = await context.newPage();
  const mine = () => ledger.filter((e) => e.visitor === visitor);
  // Engagement is left out: the browser's tooling loses sight of the ones sent while a page unloads.
  const settled = () => mine().every((e) => e.payload.n === "engagement" || e.to !== null || e.failed !== null);
  /** Does something, then waits until the tracker has sent `expected.n` (to `expected.u`, when given) and this visitor's requests are answered. */
  const act = async (label, action, expected) => {
    visitor.actionStartedAt = Date.now();
    const before = mine().length;
    await action();
    await until(`${name}: ${label}`, () => mine().slice(before).some((e) => e.payload.n === expected.n && (!expected.u || e.payload.u === expected.u)) && settled());
  };
  const pause = (ms) => page.waitForTimeout(ms);
  await script({ page, act, pause, url: (path) => `${site.origin}${path}` });
  // Leaving: closing the tab makes the tracker send the last page's engagement.
  await page.close({ runBeforeUnload: true });
  await new Promise((resolve) => setTimeout(resolve, 500));
  await context.close();
}

const VISITS = {
  // One page, a while on it, then the tab is closed: a bounce, however long it stayed.
  reader: async ({ page, act, pause, url }) => {
    await act("home", () => page.goto(url("/")), { n: "pageview" });
    await pause(3000);
  },
  // A pageview and a custom event with properties: not a bounce.
  signup: async ({ page, act, pause, url }) => {
    await act("pricing", () => page.goto(url("/pricing")), { n: "pageview" });
    await pause(1500);
    await act("sign up", () => page.click("#signup"), { n: "Signup" });
    await pause(3000);
  },
  // A download, a purchase with revenue, a second page, an outbound link and back.
  buyer: async ({ page, act, pause, url }) => {
    await act("pricing", () => page.goto(url("/pricing")), { n: "pageview" });
    await pause(1000);
    await act("price list", () => page.click("#price-list"), { n: "File Download" });
    await pause(1000);
    await act("buy", () => page.click("#buy"), { n: "Purchase" });
    await pause(1000);
    await act("checkout", () => page.click("#checkout"), { n: "pageview", u: url("/thanks") });
    await pause(1000);
    await act("docs", () => page.click("#docs"), { n: "Outbound Link: Click" });
    await page.waitForURL(OUTBOUND);
    await pause(1000);
    await act("back", () => page.goBack(), { n: "pageview", u: url("/thanks") });
    await pause(2000);
  },
  // A single-page app with hash-based routing: three screens and a custom event on one.
  appUser: async ({ page, act, pause, url }) => {
    await act("home screen", () => page.goto(url("/app/#/home")), { n: "pageview" });
    await pause(1000);
    await act("settings screen", () => page.evaluate(() => (location.hash = "#/settings")), { n: "pageview", u: url("/app/#/settings") });
    await pause(1000);
    await act("upgrade", () => page.click("#upgrade"), { n: "Signup" });
    await pause(1000);
    await act("billing screen", () => page.evaluate(() => (location.hash = "#/billing")), { n: "pageview", u: url("/app/#/billing") });
    await pause(3000);
  },
  // One screen of the app: a bounce on a hash page.
  appGlance: async ({ page, act, pause, url }) => {
    await act("settings screen", () => page.goto(url("/app/#/settings")), { n: "pageview" });
    await pause(3000);
  },
};

// ---------------------------------------------------------------------------------------------
// Plausible's definitions, applied to what the browser sent.

/** The page Plausible records: the path, plus the fragment when the tracker is in hash mode. */
function pageOf(payload) {
  const url = new URL(payload.u);
  return decodeURIComponent(url.pathname) + (payload.h ? url.hash : "");
}

const round = (value, digits = 0) => Math.round(value * 10 ** digits) / 10 ** digits;
const percent = (part, whole) => (whole ? round((part / whole) * 100, 1) : 0);

/** One visit per visitor: every visitor's events here lie within minutes of each other. */
function expectations(ledger) {
  const events = ledger
    .filter((e) => e.payload.n !== "engagement")
    .map((e) => ({ visitor: e.visitor.name, name: e.payload.n, page: pageOf(e.payload), props: e.payload.p ?? {}, revenue: e.payload.$, from: e.from, to: e.to ?? e.from + 2000 }));
  const visits = new Map();
  for (const event of events) {
    if (!visits.has(event.visitor)) visits.set(event.visitor, []);
    visits.get(event.visitor).push(event);
  }
  const visitList = [...visits.values()].map((list) => {
    const first = list[0];
    const last = list[list.length - 1];
    const pageviews = list.filter((e) => e.name === "pageview");
    return {
      visitor: first.visitor,
      events: list,
      bounce: list.length === 1,
      entry: pageviews[0].page,
      // Whole seconds between the two events, whether the product keeps seconds or milliseconds.
      duration: list.length === 1 ? { min: 0, max: 0 } : {
        min: Math.max(0, Math.min(Math.floor(last.from / 1000) - Math.floor(first.to / 1000), (last.from - first.to) / 1000)),
        max: Math.max(Math.floor(last.to / 1000) - Math.floor(first.from / 1000), (last.to - first.from) / 1000),
      },
    };
  });
  return { events, visits: visitList };
}

function totals({ events, visits }) {
  const pageviews = events.filter((e) => e.name === "pageview").length;
  const mean = (key) => visits.reduce((sum, v) => sum + v.duration[key], 0) / visits.length;
  return {
    visitors: new Set(events.map((e) => e.visitor)).size,
    visits: visits.length,
    pageviews,
    events: events.length,
    bounce_rate: Math.round((visits.filter((v) => v.bounce).length / visits.length) * 100),
    views_per_visit: round(pageviews / visits.length, 2),
    visit_duration: { min: Math.round(mean("min")), max: Math.round(mean("max")) },
  };
}

/** Visitors and events grouped by what `key` gives for each event (events it gives null for are left out). */
function groupBy(events, key) {
  const groups = new Map();
  for (const event of events) {
    const value = key(event);
    if (value === null) continue;
    if (!groups.has(value)) groups.set(value, []);
    groups.get(value).push(event);
  }
  return new Map([...groups].map(([value, list]) => [value, { visitors: new Set(list.map((e) => e.visitor)).size, events: list.length, list }]));
}

function byPage(expected) {
  return new Map(
    [...groupBy(expected.events, (e) => e.page)].map(([page, group]) => [
      page,
      {
        visitors: group.visitors,
        visits: new Set(group.list.map((e) => e.visitor)).size,
        pageviews: group.list.filter((e) => e.name === "pageview").length,
        events: group.events,
      },
    ]),
  );
}

function byGoal(expected) {
  const visitors = new Set(expected.events.map((e) => e.visitor)).size;
  const rows = new Map();
  for (const goal of GOALS) {
    const list = expected.events.filter(goal.matches);
    if (!list.length) continue;
    const converted = new Set(list.map((e) => e.visitor)).size;
    const revenue = list.filter((e) => e.revenue).map((e) => Number(e.revenue.amount));
    rows.set(goal.display, {
      visitors: converted,
      events: list.length,
      conversion_rate: percent(converted, visitors),
      revenue: revenue.length ? { total: round(revenue.reduce((a, b) => a + b, 0), 2), average: round(revenue.reduce((a, b) => a + b, 0) / revenue.length, 2), currency: list.find((e) => e.revenue).revenue.currency } : null,
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------

const suffix = () => randomBytes(4).toString("hex");

async function json(response, what) {
  const text = await response.text();
  assert.ok(response.ok, `${what}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** A user on the Pro plan with a full key, and a website in UTC. */
async function account(base) {
  const post = (path, body, headers = {}) =>
    fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  const signup = await json(await post("/api/v1/auth/signup", { email: `tracker-${suffix()}@example.com`, password: PASSWORD, name: "Tracker" }), "signup");
  const session = { Authorization: `Bearer ${signup.data.session_token}` };
  const [team] = (await json(await fetch(`${base}/api/v1/teams`, { headers: session }), "teams")).data;
  // Pro, with room in the per-minute limit for the test's two dozen queries.
  const plan = await fetch(`${base}/api/v1/teams/${team.id}/plan`, {
    method: "PUT",
    headers: { "content-type": "application/json", "X-Operator-Token": OPERATOR_TOKEN },
    body: JSON.stringify({ plan: "pro", overrides: { requests_per_minute: 600 } }),
  });
  await json(plan, "set plan");
  const created = await json(await post("/api/v1/account/api-keys", { name: "tracker test", permissions: "full", teams: "all" }, session), "api key");
  const auth = { Authorization: `Bearer ${created.data.key}` };
  const domain = `shop-${suffix()}.example.com`;
  const website = await json(await post("/api/external/v1/websites", { team_id: team.id, domain, name: "Shop", timezone: "UTC" }, auth), "website");
  return { auth, domain, website: website.data };
}

const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);

for (const mode of MODES) {
  describe(`Plausible's tracker against the drop-in (${mode})`, () => {
    let product;
    let site;
    let auth;
    let domain;
    const ledger = [];
    let expected;
    const goalAnswers = [];
    let days;

    const v1 = async (path, params) => {
      const query = new URLSearchParams({ site_id: domain, period: "custom", date: days.join(","), ...params });
      const response = await fetch(`${product.base}/api/external/v1/plausible/api/v1/stats/${path}?${query}`, { headers: auth });
      return json(response, `v1 ${path} ${query}`);
    };
    const v2 = async (body) => {
      const response = await fetch(`${product.base}/api/external/v1/plausible/api/v2/query`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ site_id: domain, date_range: days, ...body }),
      });
      return json(response, `v2 ${JSON.stringify(body)}`);
    };
    /** v2 rows as a map from their first dimension to {metric: value}. */
    const v2Rows = (answer, metrics) =>
      new Map(answer.results.map((row) => [row.dimensions[0], Object.fromEntries(metrics.map((m, i) => [m, row.metrics[i]]))]));
    const v1Rows = (answer, key) => new Map(answer.results.map((row) => [row[key], row]));
    const pick = (row, metrics) => Object.fromEntries(metrics.map((m) => [m, row?.[m]]));
    const rangeLabel = (range) => `${range.min}–${range.max} s`;
    /** The range's label when `actual` lies in it, so that a deepEqual shows only real differences. */
    const within = (actual, range) => (actual >= range.min && actual <= range.max ? rangeLabel(range) : actual);
    /** The figures with visit_duration, a range, written as its label. */
    const labelled = (figures) => ({ ...figures, visit_duration: rangeLabel(figures.visit_duration) });
    const assertDuration = (actual, range, where) =>
      assert.ok(actual >= range.min && actual <= range.max, `${where}: visit_duration ${actual} is outside ${rangeLabel(range)}`);

    before(async () => {
      product = await startProduct(mode);
      let website;
      ({ auth, domain, website } = await account(product.base));
      const endpoint = `${product.base}/api/event`;
      site = await startSite({ domain, endpoint });
      for (const [name, script] of Object.entries(VISITS)) await visit({ name, site, endpoint, ledger }, script);
      expected = expectations(ledger);
      days = [utcDay(ledger[0].from), utcDay(Date.now())];
      for (const goal of GOALS) {
        const response = await fetch(`${product.base}/api/external/v1/websites/${website.id}/goals`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify(goal.body),
        });
        goalAnswers.push({ goal: goal.display, status: response.status, body: await response.text() });
      }
    });

    after(async () => {
      await site?.close();
      await product?.stop();
    });

    test("the tracker sent every action to /api/event as text/plain and each answer it could read was a 202 with CORS", () => {
      const sent = (visitor) => expected.events.filter((e) => e.visitor === visitor).map((e) => `${e.name} ${e.page}`);
      assert.deepEqual(sent("reader"), ["pageview /"]);
      assert.deepEqual(sent("signup"), ["pageview /pricing", "Signup /pricing"]);
      assert.deepEqual(sent("buyer"), ["pageview /pricing", "File Download /pricing", "Purchase /pricing", "pageview /thanks", "Outbound Link: Click /thanks", "pageview /thanks"]);
      assert.deepEqual(sent("appUser"), ["pageview /app/#/home", "pageview /app/#/settings", "Signup /app/#/settings", "pageview /app/#/billing"]);
      assert.deepEqual(sent("appGlance"), ["pageview /app/#/settings"]);
      assert.ok(ledger.some((e) => e.payload.n === "engagement"), "the tracker sent engagement events");
      const unfollowed = ledger.filter((e) => e.payload.n !== "engagement" && e.status === null).map((e) => e.payload.n);
      assert.ok(unfollowed.every((n) => n === "Outbound Link: Click"), `only the request sent as the page unloads may be lost from sight: ${unfollowed}`);
      for (const entry of ledger) assert.equal(entry.contentType, "text/plain", `${entry.payload.n} ${entry.payload.u}`);
      const answers = [...new Set(ledger.map((e) => e.visitor))].flatMap((v) => v.answers);
      assert.deepEqual(answers, [202, 202, 202], "the page read a 202 for each of its three custom events");
      for (const entry of ledger.filter((e) => e.status !== null)) {
        assert.equal(entry.status, 202, `${entry.payload.n} ${entry.payload.u}`);
        assert.ok(entry.cors === "*" || entry.cors === site.origin, `CORS on ${entry.payload.n}: ${entry.cors}`);
      }
    });

    test("v1 aggregate: visitors, visits, pageviews, events, views per visit and bounce rate follow Plausible's definitions", async () => {
      const want = totals(expected);
      const answer = await v1("aggregate", { metrics: "visitors,visits,pageviews,events,views_per_visit,bounce_rate" });
      const got = Object.fromEntries(Object.entries(answer.results).map(([metric, { value }]) => [metric, value]));
      assert.deepEqual(got, pick(want, ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate"]));
    });

    test("v1 aggregate: visit duration runs from a visit's first to its last event other than engagement", async () => {
      const answer = await v1("aggregate", { metrics: "visit_duration" });
      assertDuration(answer.results.visit_duration.value, totals(expected).visit_duration, "v1 aggregate");
    });

    test("v2 aggregate gives the same figures", async () => {
      const want = totals(expected);
      const metrics = ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration"];
      const answer = await v2({ metrics });
      const got = Object.fromEntries(metrics.map((m, i) => [m, answer.results[0].metrics[i]]));
      assert.deepEqual({ ...got, visit_duration: within(got.visit_duration, want.visit_duration) }, labelled(want));
    });

    test("v1 and v2 timeseries give the day's figures", async (t) => {
      if (days[0] !== days[1]) return t.skip("the run straddled a UTC midnight");
      const want = totals(expected);
      const metrics = ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration"];
      const series = await v1("timeseries", { metrics: metrics.join(","), interval: "date" });
      const day = pick(series.results.find((row) => row.date === days[0]), metrics);
      assert.deepEqual({ ...day, visit_duration: within(day.visit_duration, want.visit_duration) }, labelled(want), "v1");
      // Plausible's v2 gives views_per_visit by no dimension, time included.
      const byDay = metrics.filter((m) => m !== "views_per_visit");
      const row = v2Rows(await v2({ metrics: byDay, dimensions: ["time:day"] }), byDay).get(days[0]);
      assert.deepEqual({ ...row, visit_duration: within(row?.visit_duration, want.visit_duration) }, pick(labelled(want), byDay), "v2");
    });

    test("breakdown by event:page lists hash pages with their visitors, visits, pageviews and events", async () => {
      const metrics = ["visitors", "visits", "pageviews", "events"];
      const want = Object.fromEntries([...byPage(expected)].map(([page, row]) => [page, pick(row, metrics)]));
      const v1Answer = await v1("breakdown", { property: "event:page", metrics: metrics.join(",") });
      assert.deepEqual(Object.fromEntries([...v1Rows(v1Answer, "page")].map(([page, row]) => [page, pick(row, metrics)])), want);
      const v2Answer = await v2({ metrics, dimensions: ["event:page"] });
      assert.deepEqual(Object.fromEntries(v2Rows(v2Answer, metrics)), want);
    });

    test("breakdown by event:page gives each page the bounce rate and visit duration of the visits that entered there", async () => {
      const entered = new Map();
      for (const visit of expected.visits) {
        if (!entered.has(visit.entry)) entered.set(visit.entry, []);
        entered.get(visit.entry).push(visit);
      }
      const metrics = ["visitors", "bounce_rate", "visit_duration"];
      const want = {};
      for (const [page, visits] of entered) {
        const figures = totals({ events: visits.flatMap((v) => v.events), visits });
        want[page] = { bounce_rate: figures.bounce_rate, visit_duration: figures.visit_duration };
      }
      const got = (rows) =>
        Object.fromEntries([...entered.keys()].map((page) => [page, { bounce_rate: rows.get(page)?.bounce_rate, visit_duration: within(rows.get(page)?.visit_duration, want[page].visit_duration) }]));
      const v1Answer = v1Rows(await v1("breakdown", { property: "event:page", metrics: metrics.join(",") }), "page");
      const wanted = Object.fromEntries(Object.entries(want).map(([page, figures]) => [page, labelled(figures)]));
      assert.deepEqual(got(v1Answer), wanted, "v1");
      const v2Answer = v2Rows(await v2({ metrics, dimensions: ["event:page"] }), metrics);
      assert.deepEqual(got(v2Answer), wanted, "v2");
    });

    test("breakdown by event:name counts pageviews and custom events but not engagement", async () => {
      const want = Object.fromEntries([...groupBy(expected.events, (e) => e.name)].map(([name, g]) => [name, { visitors: g.visitors, events: g.events }]));
      const v1Answer = await v1("breakdown", { property: "event:name", metrics: "visitors,events" });
      assert.deepEqual(Object.fromEntries([...v1Rows(v1Answer, "name")].map(([name, row]) => [name, pick(row, ["visitors", "events"])])), want);
      const v2Answer = await v2({ metrics: ["visitors", "events"], dimensions: ["event:name"] });
      assert.deepEqual(Object.fromEntries(v2Rows(v2Answer, ["visitors", "events"])), want);
    });

    test("a custom property is a breakdown dimension, with (none) for events without it", async () => {
      const want = Object.fromEntries(
        [...groupBy(expected.events, (e) => e.props.plan ?? "(none)")].map(([plan, g]) => [plan, { visitors: g.visitors, events: g.events }]),
      );
      const v1Answer = await v1("breakdown", { property: "event:props:plan", metrics: "visitors,events" });
      assert.deepEqual(Object.fromEntries([...v1Rows(v1Answer, "plan")].map(([plan, row]) => [plan, pick(row, ["visitors", "events"])])), want);
      const v2Answer = await v2({ metrics: ["visitors", "events"], dimensions: ["event:props:plan"] });
      assert.deepEqual(Object.fromEntries(v2Rows(v2Answer, ["visitors", "events"])), want);
    });

    test("a custom property is a filter", async () => {
      const pro = expected.events.filter((e) => e.props.plan === "pro");
      const want = { visitors: new Set(pro.map((e) => e.visitor)).size, events: pro.length };
      const v1Answer = await v1("aggregate", { metrics: "visitors,events", filters: "event:props:plan==pro" });
      assert.deepEqual({ visitors: v1Answer.results.visitors.value, events: v1Answer.results.events.value }, want);
      const v2Answer = await v2({ metrics: ["visitors", "events"], filters: [["is", "event:props:plan", ["pro"]]] });
      assert.deepEqual(v2Answer.results[0].metrics, [want.visitors, want.events]);
    });

    test("outbound link clicks and file downloads carry the clicked URL in their url property", async () => {
      for (const name of ["Outbound Link: Click", "File Download"]) {
        const mine = expected.events.filter((e) => e.name === name);
        const want = Object.fromEntries([...groupBy(mine, (e) => e.props.url)].map(([url, g]) => [url, { visitors: g.visitors, events: g.events }]));
        const v1Answer = await v1("breakdown", { property: "event:props:url", metrics: "visitors,events", filters: `event:name==${name}` });
        assert.deepEqual(Object.fromEntries([...v1Rows(v1Answer, "url")].map(([url, row]) => [url, pick(row, ["visitors", "events"])])), want, `v1 ${name}`);
        const v2Answer = await v2({ metrics: ["visitors", "events"], dimensions: ["event:props:url"], filters: [["is", "event:name", [name]]] });
        assert.deepEqual(Object.fromEntries(v2Rows(v2Answer, ["visitors", "events"])), want, `v2 ${name}`);
      }
      assert.deepEqual(
        expected.events.filter((e) => e.props.url).map((e) => e.props.url),
        [`${site.origin}${PRICE_LIST}`, OUTBOUND],
        "the tracker reports the download without its query string and the outbound link as clicked",
      );
    });

    test("goals are created through the API", () => {
      for (const answer of goalAnswers) assert.ok(answer.status === 200 || answer.status === 201, `goal ${answer.goal}: ${answer.status} ${answer.body}`);
    });

    test("breakdown by event:goal gives each goal's visitors, events and conversion rate", async () => {
      const metrics = ["visitors", "events", "conversion_rate"];
      const want = Object.fromEntries([...byGoal(expected)].map(([goal, row]) => [goal, pick(row, metrics)]));
      const v1Answer = await v1("breakdown", { property: "event:goal", metrics: metrics.join(",") });
      assert.deepEqual(Object.fromEntries([...v1Rows(v1Answer, "goal")].map(([goal, row]) => [goal, pick(row, metrics)])), want);
      const v2Answer = await v2({ metrics, dimensions: ["event:goal"] });
      assert.deepEqual(Object.fromEntries(v2Rows(v2Answer, metrics)), want);
    });

    test("a goal is a filter, and its conversion rate is over all visitors", async () => {
      const want = byGoal(expected).get("Signup");
      const v1Answer = await v1("aggregate", { metrics: "visitors,events,conversion_rate", filters: "event:goal==Signup" });
      assert.deepEqual(Object.fromEntries(Object.entries(v1Answer.results).map(([m, { value }]) => [m, value])), pick(want, ["visitors", "events", "conversion_rate"]));
      const v2Answer = await v2({ metrics: ["visitors", "events", "conversion_rate"], filters: [["is", "event:goal", ["Signup"]]] });
      assert.deepEqual(v2Answer.results[0].metrics, [want.visitors, want.events, want.conversion_rate]);
    });

    test("a revenue goal sums and averages its events' revenue", async () => {
      const want = byGoal(expected).get("Purchase").revenue;
      assert.deepEqual(want, { total: 29.9, average: 29.9, currency: "EUR" }, "the purchase the page made");
      const money = (value) => (typeof value === "object" && value !== null ? value.value : value);
      const filtered = await v2({ metrics: ["total_revenue", "average_revenue"], filters: [["is", "event:goal", ["Purchase"]]] });
      assert.deepEqual(filtered.results[0].metrics.map(money), [want.total, want.average]);
      const byGoalAnswer = v2Rows(await v2({ metrics: ["visitors", "total_revenue", "average_revenue"], dimensions: ["event:goal"] }), ["visitors", "total_revenue", "average_revenue"]);
      const row = byGoalAnswer.get("Purchase");
      assert.deepEqual([money(row?.total_revenue), money(row?.average_revenue)], [want.total, want.average]);
    });

    test("engagement events reach the product: every page, short enough to be seen whole, is scrolled 100%", async () => {
      const pages = [...byPage(expected).keys()];
      const answer = v2Rows(await v2({ metrics: ["scroll_depth"], dimensions: ["event:page"] }), ["scroll_depth"]);
      assert.deepEqual(Object.fromEntries(pages.map((page) => [page, answer.get(page)?.scroll_depth])), Object.fromEntries(pages.map((page) => [page, 100])));
    });
  });
}
