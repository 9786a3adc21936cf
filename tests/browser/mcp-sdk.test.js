// The MCP endpoint (`/mcp`) as a real MCP client uses it: the official TypeScript SDK's `Client`
// and `StreamableHTTPClientTransport` with an `OAuthClientProvider`, in both run modes. The SDK
// discovers the protected-resource and authorization-server metadata, registers itself, and sends
// the person to the authorization URL (PKCE S256); the person signs in and consents in Debian's
// chromium, picking a team and a level per tool category by the page's roles and labels; the SDK
// then exchanges the code (`finishAuth`) and connects again, as its own examples do. Expectations
// come from the product contract (SPEC sections 4, 7 and 8) only: the tools' figures are checked
// against the events this test sent and against the REST API for the same question.
//
// MCP_MODES (else MODES) narrows the run modes, e.g. MCP_MODES=all-in-one.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { after, before, describe, test } from "node:test";

import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { chromium } from "playwright-core";

import { CHROMIUM, OPERATOR_TOKEN, eventually, jsonClient, startProduct } from "./harness.js";

const MODES = (process.env.MCP_MODES ?? process.env.MODES ?? "all-in-one,split").split(",");
const PASSWORD = "correct horse battery staple";
const LEVELS = ["analytics:read", "management:read", "management:write"];
const AGENTS = {
  firefox: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  safari: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  chrome: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
};
// What the test sends: three visitors (one browser each), four pageviews and one custom event.
const VISITS = [
  { agent: AGENTS.firefox, events: [["pageview", "/"], ["pageview", "/pricing"]] },
  { agent: AGENTS.safari, events: [["pageview", "/"]] },
  { agent: AGENTS.chrome, events: [["pageview", "/docs"], ["Signup", "/docs"]] },
];
const SENT = { visitors: 3, pageviews: 4 };

const unique = () => randomBytes(4).toString("hex");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const today = () => new Date().toISOString().slice(0, 10);


/**
 * An in-memory OAuthClientProvider, as the SDK's own example client keeps one: a public client
 * (no secret) with a loopback redirect URI. It records what the SDK asks of it.
 */
class RecordingProvider {
  constructor(redirectUrl, clientName) {
    this._redirectUrl = redirectUrl;
    this.clientName = clientName;
    this.authorizationUrls = [];
    this.savedTokens = [];
    this.invalidated = [];
  }
  get redirectUrl() {
    return this._redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: this.clientName,
      redirect_uris: [this._redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    return randomBytes(16).toString("base64url");
  }
  clientInformation() {
    return this._clientInformation;
  }
  saveClientInformation(information) {
    this._clientInformation = information;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this.savedTokens.push(tokens);
    this._tokens = tokens;
  }
  redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
  }
  saveCodeVerifier(verifier) {
    this._codeVerifier = verifier;
  }
  codeVerifier() {
    if (!this._codeVerifier) throw new Error("no code verifier saved");
    return this._codeVerifier;
  }
  saveDiscoveryState(state) {
    this.discovery = state;
  }
  invalidateCredentials(scope) {
    this.invalidated.push(scope);
    if (scope === "all" || scope === "client") this._clientInformation = undefined;
    if (scope === "all" || scope === "tokens") this._tokens = undefined;
    if (scope === "all" || scope === "verifier") this._codeVerifier = undefined;
  }
}

/** How a tool call ended: a result, a result flagged `isError`, or a thrown error. */
async function outcome(call) {
  try {
    const result = await call;
    const text = (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
    return { kind: result.isError ? "tool error" : "ok", result, text };
  } catch (error) {
    return { kind: "thrown", error, text: `${error.constructor.name}: ${error.message}` };
  }
}

/** The JSON a tool answered (its structured content, else its first text block). */
function json(result) {
  assert.ok(!result.isError, `tool error: ${JSON.stringify(result.content)}`);
  if (result.structuredContent !== undefined) return result.structuredContent;
  const text = result.content.find((c) => c.type === "text")?.text;
  assert.ok(text !== undefined, `no text content in ${JSON.stringify(result)}`);
  return JSON.parse(text);
}

for (const mode of MODES) {
  describe(`an MCP client built on the official SDK (${mode})`, () => {
    let product;
    let browser;
    let callback;
    let redirectUri;
    /** Ada: owner of her personal team and of Acme, a Pro team with one website that got events. */
    let ada;
    let acme;
    let site;
    let elsewhere;
    let apiKey;
    /** The connection granted every level on Acme, and the one granted read levels only. */
    let full;
    let readOnly;
    const tools = {};
    /** The days the events were sent on (a custom range, so that UTC midnight cannot split them). */
    let sentDays;
    const period = () => ({ period: "custom", date: sentDays });

    const { api, ok } = jsonClient(() => product.base);
    const rest = (path) => ok("GET", `/api/external/v1${path}`, { headers: { authorization: `Bearer ${apiKey}` } });
    const signUp = async (name) => {
      const email = `${name.toLowerCase()}-${unique()}@example.com`;
      const data = await ok("POST", "/api/v1/auth/signup", { body: { email, password: PASSWORD, name } });
      const teams = await ok("GET", "/api/v1/teams", { token: data.session_token });
      return { email, name, token: data.session_token, id: data.user.id, team: teams[0], context: await browser.newContext() };
    };
    const setPlan = (teamId, plan, overrides) =>
      ok("PUT", `/api/v1/teams/${teamId}/plan`, { body: { plan, ...(overrides ? { overrides } : {}) }, headers: { "x-operator-token": OPERATOR_TOKEN } });

    /**
     * The person at the authorization URL in their browser: signs in if asked, picks `team` and
     * the `levels`, allows, and ends up at the client's redirect URI; returns that URL.
     */
    const consent = async (user, authorizationUrl, { team, levels }) => {
      const page = await user.context.newPage();
      try {
        await page.goto(authorizationUrl.href);
        const signIn = page.getByRole("button", { name: "Sign in", exact: true });
        const allow = page.getByRole("button", { name: "Allow", exact: true });
        await signIn.or(allow).first().waitFor();
        if (await signIn.isVisible()) {
          await page.getByLabel("Email").fill(user.email);
          await page.getByLabel("Password").fill(PASSWORD);
          await signIn.click();
        }
        await allow.waitFor();
        await page.getByLabel("Team").selectOption({ label: team.name });
        for (const level of LEVELS) {
          await page.getByRole("checkbox", { name: new RegExp(`^${level}\\b`) }).setChecked(levels.includes(level));
        }
        await allow.click();
        await page.waitForURL((url) => url.href.startsWith(`${redirectUri}?`));
        return new URL(page.url());
      } finally {
        await page.close();
      }
    };

    /** A fresh SDK client for `clientName`; its transport's requests are logged in `requests`. */
    const sdkClient = (clientName) => {
      const provider = new RecordingProvider(redirectUri, clientName);
      const requests = [];
      const logged = (url, init) => {
        requests.push(`${init?.method ?? "GET"} ${new URL(url).pathname}`);
        return fetch(url, init);
      };
      const transport = () => new StreamableHTTPClientTransport(new URL(`${product.base}/mcp`), { authProvider: provider, fetch: logged });
      const client = new Client({ name: "zenovay-mcp-sdk-test", version: "1.0.0" });
      const errors = [];
      client.onerror = (error) => errors.push(`${error.constructor.name}: ${error.message}`);
      return { provider, requests, transport, client, errors };
    };

    /**
     * The SDK example's flow: connect, which fails as unauthorized after sending the person to
     * the authorization URL; consent in the browser; `finishAuth(code)`; connect again.
     */
    const connectWithConsent = async (user, clientName, { team, levels }) => {
      const sdk = sdkClient(clientName);
      const first = sdk.transport();
      await assert.rejects(new Client({ name: "zenovay-mcp-sdk-test", version: "1.0.0" }).connect(first), UnauthorizedError);
      const authorizationUrl = sdk.provider.authorizationUrls.at(-1);
      assert.ok(authorizationUrl, "the SDK sent the person to an authorization URL");
      const back = await consent(user, authorizationUrl, { team, levels });
      assert.equal(back.searchParams.get("state"), authorizationUrl.searchParams.get("state"), "the state comes back unchanged");
      const code = back.searchParams.get("code");
      assert.ok(code, `a code in ${back}`);
      await first.finishAuth(code);
      await sdk.client.connect(sdk.transport());
      return { ...sdk, authorizationUrl, back };
    };

    const call = (connection, name, args = {}) => connection.client.callTool({ name, arguments: args });

    before(async () => {
      product = await startProduct(mode);
      browser = await chromium.launch(CHROMIUM);
      // The client's loopback redirect URI (RFC 8252), where the browser lands with the code.
      callback = http.createServer((request, response) => response.end("Authorized; you may close this window."));
      await new Promise((resolve) => callback.listen(0, "127.0.0.1", resolve));
      redirectUri = `http://127.0.0.1:${callback.address().port}/callback`;

      ada = await signUp("Ada");
      acme = await ok("POST", "/api/v1/teams", { token: ada.token, body: { name: `Acme ${unique()}` } });
      // A paid plan, for an API key to compare the tools' figures with the REST API's.
      await setPlan(acme.id, "pro");
      apiKey = (await ok("POST", "/api/v1/account/api-keys", { token: ada.token, body: { name: "compare", permissions: "full", teams: "all" } })).key;
      site = await ok("POST", "/api/external/v1/websites", {
        headers: { authorization: `Bearer ${apiKey}` },
        body: { team_id: acme.id, domain: `shop-${unique()}.example.com`, name: "Shop" },
      });
      // A website of Ada's other (personal) team, which a connection to Acme must not reach.
      elsewhere = await ok("POST", "/api/external/v1/websites", {
        headers: { authorization: `Bearer ${apiKey}` },
        body: { team_id: ada.team.id, domain: `home-${unique()}.example.com`, name: "Home" },
      });
      const firstDay = today();
      for (const visit of VISITS) {
        for (const [name, page] of visit.events) {
          const response = await fetch(`${product.base}/api/event`, {
            method: "POST",
            headers: { "content-type": "application/json", "user-agent": visit.agent },
            body: JSON.stringify({ name, domain: site.domain, url: `https://${site.domain}${page}` }),
          });
          assert.equal(response.status, 202, await response.text());
        }
      }
      sentDays = `${firstDay},${today()}`;
      // Accepted events are stored, maybe not at once: wait until the REST API counts them all.
      await eventually(async () => {
        const { results } = await rest(`/stats/aggregate?site_id=${site.id}&${new URLSearchParams(period())}&metrics=visitors,pageviews`);
        assert.deepEqual({ visitors: results.visitors.value, pageviews: results.pageviews.value }, SENT);
      });
    });

    after(async () => {
      await Promise.allSettled([full?.client.close(), readOnly?.client.close()]);
      await browser?.close();
      await new Promise((resolve) => (callback ? callback.close(resolve) : resolve()));
      await product?.stop();
    });

    test("without a token the SDK discovers the metadata, registers itself and sends the person to authorize with PKCE S256", async () => {
      const sdk = sdkClient(`SDK full ${unique()}`);
      const transport = sdk.transport();
      await assert.rejects(new Client({ name: "zenovay-mcp-sdk-test", version: "1.0.0" }).connect(transport), UnauthorizedError);
      assert.ok(sdk.requests.some((r) => r.startsWith("GET /.well-known/oauth-protected-resource")), sdk.requests.join("\n"));
      assert.ok(sdk.requests.some((r) => r.startsWith("GET /.well-known/oauth-authorization-server")), sdk.requests.join("\n"));
      // What the SDK discovered (RFC 9728, RFC 8414): this server guards /mcp and authorizes for it.
      const { resourceMetadata, authorizationServerMetadata: server } = sdk.provider.discovery ?? {};
      assert.equal(resourceMetadata?.resource, `${product.base}/mcp`);
      assert.equal(server?.issuer, product.base);
      assert.ok(server.code_challenge_methods_supported?.includes("S256"), JSON.stringify(server));
      assert.ok(server.registration_endpoint, "a registration endpoint");
      assert.ok(sdk.requests.includes(`POST ${new URL(server.registration_endpoint).pathname}`), sdk.requests.join("\n"));
      const registration = sdk.provider.clientInformation();
      assert.ok(registration?.client_id, "the SDK registered a client");
      const url = sdk.provider.authorizationUrls.at(-1);
      assert.ok(url, "the SDK redirected to the authorization endpoint");
      assert.equal(url.origin, new URL(product.base).origin);
      assert.equal(url.searchParams.get("response_type"), "code");
      assert.equal(url.searchParams.get("client_id"), registration.client_id);
      assert.equal(url.searchParams.get("redirect_uri"), redirectUri);
      assert.equal(url.searchParams.get("code_challenge_method"), "S256");
      assert.equal(url.searchParams.get("code_challenge"), createHash("sha256").update(sdk.provider.codeVerifier()).digest("base64url"));
      assert.equal(url.searchParams.get("resource"), `${product.base}/mcp`);
      for (const level of LEVELS) assert.ok((url.searchParams.get("scope") ?? "").split(" ").includes(level), `scope ${url.searchParams.get("scope")} offers ${level}`);
      full = { ...sdk, first: transport, authorizationUrl: url };
    });

    test("after consent in the browser, finishAuth and a second connect give a working MCP session", async () => {
      assert.ok(full, "the previous test started the flow");
      const back = await consent(ada, full.authorizationUrl, { team: acme, levels: LEVELS });
      assert.equal(back.searchParams.get("state"), full.authorizationUrl.searchParams.get("state"));
      const code = back.searchParams.get("code");
      assert.ok(code, `a code in ${back}`);
      await full.first.finishAuth(code);
      assert.ok(full.provider.tokens()?.access_token, "finishAuth saved an access token");
      await full.client.connect(full.transport());
      assert.ok(full.client.getServerVersion()?.name, "the server introduced itself");
      assert.ok(full.client.getServerCapabilities()?.tools, "the server offers tools");
      assert.deepEqual(full.errors, [], "the SDK reported no transport error");
    });

    test("tools/list offers list websites, overview, aggregate, timeseries, breakdown, realtime, create and update website", async () => {
      const { tools: listed } = await full.client.listTools();
      const find = (pattern) => listed.find((tool) => pattern.test(tool.name))?.name;
      Object.assign(tools, {
        list: find(/list.*websites?/i),
        overview: find(/overview/i),
        aggregate: find(/aggregate/i),
        timeseries: find(/time.?series/i),
        breakdown: find(/breakdown/i),
        realtime: find(/real.?time/i),
        create: find(/create.*website/i),
        update: find(/update.*website/i),
      });
      for (const [what, name] of Object.entries(tools)) assert.ok(name, `a ${what} tool among ${listed.map((t) => t.name).join(", ")}`);
    });

    test("list websites answers the chosen team's website as the REST API shows it", async () => {
      const listed = json(await call(full, tools.list));
      assert.deepEqual(listed.map((w) => [w.id, w.team_id, w.domain]), [[site.id, acme.id, site.domain]]);
      assert.deepEqual(listed, (await rest("/websites")).filter((w) => w.team_id === acme.id));
    });

    test("the tools reach only the team picked at consent, not the person's other teams", async (t) => {
      for (const [name, args] of [
        [tools.aggregate, { website_id: elsewhere.id, ...period(), metrics: ["visitors"] }],
        [tools.realtime, { website_id: elsewhere.id }],
        [tools.update, { website_id: elsewhere.id, name: "Hijacked" }],
      ]) {
        const refused = await outcome(call(full, name, args));
        t.diagnostic(`${name} on another team's website: ${refused.kind}: ${refused.text}`);
        assert.notEqual(refused.kind, "ok", `${name} answered for another team's website: ${refused.text}`);
      }
      assert.equal((await rest(`/websites/${elsewhere.id}`)).name, "Home", "the other team's website is unchanged");
    });

    test("aggregate counts exactly the visitors, pageviews and events sent, as the REST Stats API does", async () => {
      const metrics = ["visitors", "visits", "pageviews", "events", "bounce_rate"];
      const totals = json(await call(full, tools.aggregate, { website_id: site.id, ...period(), metrics }));
      // One visit bounced: Safari's single pageview (a pageview then a custom event is no bounce).
      assert.deepEqual(totals, { visitors: 3, visits: 3, pageviews: 4, events: 5, bounce_rate: 33 });
      const { results } = await rest(`/stats/aggregate?site_id=${site.id}&${new URLSearchParams(period())}&metrics=${metrics}`);
      assert.deepEqual(totals, Object.fromEntries(metrics.map((m) => [m, results[m].value])));
    });

    test("overview answers the sent visitors and pageviews, as the REST overview does", async () => {
      const overview = json(await call(full, tools.overview, { website_id: site.id, range: "24h" }));
      const expected = await rest(`/analytics/${site.id}?range=24h`);
      for (const field of ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "top_countries"]) {
        assert.deepEqual(overview[field], expected[field], field);
      }
      assert.equal(overview.visitors, SENT.visitors);
      assert.equal(overview.pageviews, SENT.pageviews);
      assert.ok(Array.isArray(overview.series), "a series");
      assert.equal(overview.series.reduce((sum, row) => sum + row.pageviews, 0), SENT.pageviews);
    });

    test("timeseries spreads the sent pageviews over its buckets, as the REST timeseries does", async () => {
      const args = { ...period(), metrics: ["visitors", "pageviews"], interval: "day" };
      const rows = json(await call(full, tools.timeseries, { website_id: site.id, ...args }));
      assert.ok(Array.isArray(rows) && rows.length >= 1, JSON.stringify(rows));
      assert.equal(rows.reduce((sum, row) => sum + row.pageviews, 0), SENT.pageviews);
      assert.equal(rows.reduce((sum, row) => sum + row.visitors, 0), SENT.visitors);
      const { results } = await rest(`/stats/timeseries?site_id=${site.id}&${new URLSearchParams({ ...args, metrics: args.metrics.join(",") })}`);
      assert.deepEqual(rows, results);
    });

    test("breakdown by page and by browser names what was sent, as the REST breakdown does", async () => {
      const byKey = (rows, key) => [...rows].sort((a, b) => String(a[key]).localeCompare(String(b[key])));
      const pages = json(await call(full, tools.breakdown, { website_id: site.id, property: "event:page", ...period(), metrics: ["visitors", "pageviews"] }));
      assert.deepEqual(byKey(pages, "page"), [
        { page: "/", visitors: 2, pageviews: 2 },
        { page: "/docs", visitors: 1, pageviews: 1 },
        { page: "/pricing", visitors: 1, pageviews: 1 },
      ]);
      const { results } = await rest(`/stats/breakdown?site_id=${site.id}&property=event:page&${new URLSearchParams(period())}&metrics=visitors,pageviews`);
      assert.deepEqual(byKey(pages, "page"), byKey(results, "page"));
      const browsers = json(await call(full, tools.breakdown, { website_id: site.id, property: "visit:browser", ...period(), metrics: ["visitors"] }));
      assert.deepEqual(byKey(browsers, "browser").map((row) => [row.browser, row.visitors]), [["Chrome", 1], ["Firefox", 1], ["Safari", 1]]);
    });

    test("realtime counts the visitors and pageviews of the last five minutes, as the REST API does", async () => {
      const now = json(await call(full, tools.realtime, { website_id: site.id }));
      assert.equal(now.visitors, SENT.visitors);
      assert.equal(now.pageviews, SENT.pageviews);
      const expected = await rest(`/realtime/${site.id}`);
      assert.deepEqual([now.visitors, now.pageviews], [expected.visitors, expected.pageviews]);
    });

    test("create website and update website act on the connected team, and the REST API sees the result", async () => {
      const domain = `blog-${unique()}.example.com`;
      const created = json(await call(full, tools.create, { domain, name: "Blog", timezone: "Europe/Paris" }));
      assert.equal(created.domain, domain);
      assert.equal(created.team_id, acme.id, "made in the team the person picked");
      assert.deepEqual(created, await rest(`/websites/${created.id}`));
      const updated = json(await call(full, tools.update, { website_id: created.id, name: "Blog, renamed", timezone: "America/New_York" }));
      assert.equal(updated.name, "Blog, renamed");
      const seen = await rest(`/websites/${created.id}`);
      assert.deepEqual([seen.name, seen.timezone, seen.domain], ["Blog, renamed", "America/New_York", domain]);
    });

    test("when the server refuses the access token, the SDK refreshes it and the call succeeds", async (t) => {
      const before = full.provider.tokens();
      assert.ok(before.refresh_token, "the token answer carried a refresh token");
      const saved = full.provider.savedTokens.length;
      const requests = full.requests.length;
      // As if the access token had expired: the SDK only learns it from the server's 401.
      full.provider._tokens = { ...before, access_token: `${before.access_token.slice(0, -4)}XXXX` };
      const listed = json(await call(full, tools.list));
      assert.ok(listed.some((w) => w.id === site.id));
      assert.equal(full.provider.savedTokens.length, saved + 1, "the SDK saved a refreshed token");
      const after = full.provider.tokens();
      assert.notEqual(after.access_token, before.access_token);
      t.diagnostic(`refresh token rotated: ${after.refresh_token !== before.refresh_token}`);
      assert.ok(full.requests.slice(requests).includes("POST /oauth/token"), full.requests.slice(requests).join("\n"));
    });

    test("a connection granted only the read levels reads, but is refused create website and nothing is made", async (t) => {
      readOnly = await connectWithConsent(ada, `SDK read-only ${unique()}`, { team: acme, levels: ["analytics:read", "management:read"] });
      const listed = json(await call(readOnly, tools.list));
      assert.ok(listed.some((w) => w.id === site.id));
      const totals = json(await call(readOnly, tools.aggregate, { website_id: site.id, ...period(), metrics: ["visitors"] }));
      assert.equal(totals.visitors, SENT.visitors);
      const websitesBefore = await rest("/websites");
      const domain = `refused-${unique()}.example.com`;
      const refused = await outcome(call(readOnly, tools.create, { domain, name: "Refused" }));
      t.diagnostic(`create website with read levels only: ${refused.kind}: ${refused.text}`);
      assert.notEqual(refused.kind, "ok", `create website was not refused: ${refused.text}`);
      assert.match(refused.text, /scope|management:write|forbidden|permission|403/i);
      assert.deepEqual(await rest("/websites"), websitesBefore, "nothing was created");
      // The connection keeps working for what it was granted.
      assert.ok(json(await call(readOnly, tools.list)).some((w) => w.id === site.id));
    });

    test("the dashboard lists each connection with its client, team and granted levels", async () => {
      const connections = await ok("GET", "/api/v1/account/mcp-connections", { token: ada.token });
      const of = (provider) => connections.filter((c) => JSON.stringify(c).includes(provider.clientName));
      for (const [connection, levels] of [[full, LEVELS], [readOnly, ["analytics:read", "management:read"]]]) {
        const rows = of(connection.provider);
        assert.equal(rows.length, 1, JSON.stringify(connections));
        assert.ok(rows[0].id, "an id to revoke it by");
        assert.equal(rows[0].team_id, acme.id);
        assert.deepEqual([...rows[0].scopes].sort(), [...levels].sort());
      }
    });

    test("revoking a connection makes the SDK client's next call fail as unauthorized within a second", async (t) => {
      const connections = await ok("GET", "/api/v1/account/mcp-connections", { token: ada.token });
      const { id } = connections.find((c) => c.client_name === full.provider.clientName);
      const refreshToken = full.provider.tokens().refresh_token;
      assert.ok(json(await call(full, tools.list)).length > 0, "the connection works before");
      const revoked = await api("DELETE", `/api/v1/account/mcp-connections/${id}`, { token: ada.token });
      assert.ok(revoked.status < 300, `${revoked.status} ${JSON.stringify(revoked.body)}`);
      const revokedAt = Date.now();
      let last;
      for (;;) {
        last = await outcome(call(full, tools.list));
        if (last.kind !== "ok" || Date.now() > revokedAt + 1_000) break;
        await sleep(50);
      }
      t.diagnostic(`the SDK client's call failed ${Date.now() - revokedAt} ms after the revocation: ${last.text}`);
      assert.equal(last.kind, "thrown", `still answered ${Date.now() - revokedAt} ms after the revocation`);
      assert.ok(last.error instanceof UnauthorizedError, last.text);
      const listed = (await ok("GET", "/api/v1/account/mcp-connections", { token: ada.token })).find((c) => c.id === id);
      assert.ok(!listed || listed.revoked_at, `listed as revoked: ${JSON.stringify(listed)}`);
      // Nor does its refresh token bring it back (the SDK tried it before giving up).
      const refreshed = await fetch(`${product.base}/oauth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: full.provider.clientInformation().client_id }),
      });
      assert.equal(refreshed.status, 400);
      assert.equal((await refreshed.json()).error, "invalid_grant");
      // The other connection is untouched.
      assert.ok(json(await call(readOnly, tools.list)).some((w) => w.id === site.id));
    });

    test("a Free team may use MCP, and its daily tool-call quota refuses the call past it", async (t) => {
      const bo = await signUp("Bo");
      assert.equal(bo.team.plan, "free");
      await setPlan(bo.team.id, "free", { mcp_calls_per_day: 2 });
      const connection = await connectWithConsent(bo, `SDK free ${unique()}`, { team: bo.team, levels: ["analytics:read"] });
      try {
        for (let n = 1; n <= 2; n += 1) assert.deepEqual(json(await call(connection, tools.list)), [], `call ${n}`);
        const refused = await outcome(call(connection, tools.list));
        t.diagnostic(`the call past the quota: ${refused.kind}: ${refused.text}`);
        assert.notEqual(refused.kind, "ok", "the third call of the day was refused");
        assert.match(refused.text, /quota|limit/i);
        // Only tools/call counts: listing the tools still works.
        assert.ok((await connection.client.listTools()).tools.length > 0);
      } finally {
        await connection.client.close();
        await bo.context.close();
      }
    });
  });
}
