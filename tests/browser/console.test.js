// The console in a real browser (Debian's chromium), in both run modes, driven through roles and
// labels as a person with a screen reader would find the controls. Set SCREENSHOTS=1 to refresh
// docs/screenshots/ from the all-in-one run.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import AxeBuilder from "@axe-core/playwright";
import { chromium } from "playwright-core";

import { CHROMIUM, OPERATOR_TOKEN, ROOT, startProduct } from "./harness.js";

const SHOTS = path.join(ROOT, "docs/screenshots");
const PASSWORD = "correct horse battery staple";

const MODES = (process.env.MODES ?? "all-in-one,split").split(",");

for (const mode of MODES) {
  describe(`the console (${mode})`, () => {
    let product;
    let browser;
    let context;
    let page;
    const foreignRequests = [];
    const pageErrors = [];
    const email = `ada-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
    /** The website the statistics tests add: its id and domain. */
    const shop = {};

    const screenshot = async (name, options = {}, on = page) => {
      if (process.env.SCREENSHOTS !== "1" || mode !== "all-in-one") return;
      mkdirSync(SHOTS, { recursive: true });
      await on.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true, ...options });
    };

    /** Adds a website with the Websites page's form, on that page, and waits for its card. */
    const addWebsite = async ({ domain, name, timezone }) => {
      await page.getByLabel("Domain").fill(domain);
      await page.getByLabel("Name").fill(name);
      if (timezone) await page.getByLabel("Timezone").selectOption(timezone);
      await page.getByRole("button", { name: "Add website" }).click();
      await page.getByRole("heading", { name }).waitFor();
    };

    /** Axe on the page as it is now (`on`, by default the signed-in tab): no serious or critical violation. */
    const accessible = async (where, on = page) => {
      const results = await new AxeBuilder({ page: on }).analyze();
      const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
      assert.deepEqual(
        bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
        [],
        `accessibility violations on ${where}`,
      );
    };

    const teamsOfMe = async () => {
      const response = await page.request.get(`${product.base}/api/v1/teams`);
      return (await response.json()).data;
    };

    before(async () => {
      product = await startProduct(mode);
      browser = await chromium.launch(CHROMIUM);
      context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      const origin = new URL(product.base).origin;
      context.on("request", (request) => {
        const url = request.url();
        if (!url.startsWith("data:") && !url.startsWith("about:") && new URL(url).origin !== origin) foreignRequests.push(url);
      });
      // The browser reports a CSP violation both as an event and on the console.
      await context.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
      });
      page = await context.newPage();
      page.on("console", (message) => {
        // A refused API call (a 4xx the test provokes) is logged by the browser; only script
        // errors and policy violations count.
        if (message.type() === "error" && !/Failed to load resource/.test(message.text())) pageErrors.push(message.text());
      });
      page.on("pageerror", (error) => pageErrors.push(String(error)));
    });

    after(async () => {
      await browser?.close();
      await product?.stop();
    });

    test("the root sends a visitor without a session to the log-in page", async () => {
      await page.goto(`${product.base}/`);
      assert.equal(new URL(page.url()).pathname, "/login");
      await page.getByRole("heading", { name: "Log in" }).waitFor();
      await accessible("/login");
      await screenshot("login");
    });

    test("a page's own requests all succeed, the tab's icon included", async () => {
      const failed = [];
      const listener = (response) => {
        if (!new URL(response.url()).pathname.startsWith("/api/") && response.status() >= 400) failed.push(`${response.status()} ${response.url()}`);
      };
      page.on("response", listener);
      await page.goto(`${product.base}/login`);
      await page.waitForLoadState("networkidle");
      page.off("response", listener);
      assert.deepEqual(failed, []);
      const icon = await page.locator('link[rel="icon"]').getAttribute("href");
      assert.match(icon, /^\/assets\/icon\.[0-9a-f]{12}\.svg$/);
      const served = await page.request.get(`${product.base}${icon}`);
      assert.equal(served.headers()["content-type"], "image/svg+xml");
    });

    test("pages and assets carry the security and cache headers", async () => {
      const response = await page.request.get(`${product.base}/login`);
      const headers = response.headers();
      assert.match(headers["content-security-policy"], /default-src 'self'; script-src 'self'/);
      assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
      assert.equal(headers["x-frame-options"], "DENY");
      assert.equal(headers["x-content-type-options"], "nosniff");
      assert.equal(headers["cache-control"], "no-store");
      const script = await page.locator('script[type="module"]').getAttribute("src");
      assert.match(script, /^\/assets\/console\.[0-9a-f]{12}\.js$/);
      const asset = await page.request.get(`${product.base}${script}`);
      assert.equal(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    });

    test("a newcomer signs up in the page and lands on the websites page", async () => {
      await page.getByRole("link", { name: "Sign up" }).click();
      await page.getByRole("heading", { name: "Sign up" }).waitFor();
      await accessible("/signup");
      await screenshot("signup");
      await page.getByLabel("Name").fill("Ada");
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign up" }).click();
      await page.waitForURL(`${product.base}/websites`);
      await page.getByRole("heading", { name: "Websites", level: 1 }).waitFor();
      await page.getByText("No websites yet").waitFor();
      const cookie = (await context.cookies()).find((c) => c.name === "zenovay_session");
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, "Lax");
      assert.equal(cookie.secure, false, "no Secure cookie without an https public URL");
    });

    test("every empty required field of a form is named next to it at once", async () => {
      await page.getByLabel("Domain").fill("");
      await page.getByLabel("Name").fill("");
      await page.getByRole("button", { name: "Add website" }).click();
      for (const [label, id] of [["Domain", "site-domain"], ["Name", "site-name"]]) {
        await page.locator(`#${id}-error`).getByText(`${label} is required.`).waitFor();
        assert.equal(await page.getByLabel(label).getAttribute("aria-invalid"), "true", label);
      }
      await page.waitForFunction(() => document.activeElement?.id === "site-domain");
    });

    test("an error from the API appears next to the field it names", async () => {
      await page.getByLabel("Domain").fill("not a domain!");
      await page.getByLabel("Name").fill("Blog");
      await page.getByRole("button", { name: "Add website" }).click();
      const error = page.locator("#site-domain-error");
      await error.waitFor();
      assert.match(await error.textContent(), /^Domain: must be a host name/);
      assert.equal(await page.getByLabel("Domain").getAttribute("aria-invalid"), "true");
    });

    test("a website added in the page shows its tracking snippet", async () => {
      const domain = `blog-${Date.now()}.example.com`;
      await addWebsite({ domain, name: "Ada's blog", timezone: "UTC" });
      // The same domain again: taken, said at Domain with its label.
      await page.getByLabel("Domain").fill(domain);
      await page.getByLabel("Name").fill("Again");
      await page.getByRole("button", { name: "Add website" }).click();
      await page.locator("#site-domain-error").getByText(`Domain: a website with domain ${domain} already exists`).waitFor();
      await page.getByLabel("Domain").fill("");
      await page.getByLabel("Name").fill("");
      const snippet = await page.locator("pre code").first().textContent();
      assert.equal(snippet, `<script defer data-domain="${domain}" data-api="${product.base}/api/event" src="${product.base}/js/script.js"></script>`);
      assert.ok(await page.getByRole("button", { name: "Copy" }).first().isVisible());
      const tracker = await page.request.get(`${product.base}/js/script.js`);
      assert.equal(tracker.status(), 200);
      await accessible("/websites");
      await screenshot("websites");
    });

    test("the served tracker sends a pageview per path, not per query string, and says why it sends nothing on localhost", async () => {
      // A site on the Internet loading the tracker from this machine's gateway, which Chromium
      // would stop as a request into a more private network: allowed for this browser alone.
      const visitor = await chromium.launch({
        ...CHROMIUM,
        args: [...CHROMIUM.args, "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"],
      });
      const own = await visitor.newContext();
      // A real visitor's browser: not one driven by automation, which the tracker leaves alone.
      await own.addInitScript(() => Object.defineProperty(Navigator.prototype, "webdriver", { get: () => false }));
      const tab = await own.newPage();
      const snippet = `<script src="${product.base}/js/script.js" data-domain="tracked.example" data-api="${product.base}/api/event"></script>`;
      await tab.route(/\/page(\?|$)|tracked\.example/, (route) => route.fulfill({ contentType: "text/html", body: `<!doctype html><title>t</title>${snippet}` }));
      const sent = [];
      tab.on("request", (request) => {
        if (request.url().endsWith("/api/event")) sent.push(JSON.parse(request.postData()).u);
      });
      try {
        await tab.goto("http://tracked.example/a");
        // Sent in order: one for the query string would come before the one for /b.
        const second = tab.waitForRequest((request) => request.url().endsWith("/api/event") && request.postData().includes("/b"));
        await tab.evaluate(() => history.pushState({}, "", "/a?tab=2"));
        await tab.evaluate(() => history.pushState({}, "", "/b"));
        await second;
        assert.deepEqual(sent, ["http://tracked.example/a", "http://tracked.example/b"]);
        const warned = tab.waitForEvent("console", (message) => message.text() === "Ignoring Event: localhost");
        await tab.goto(`${product.base}/page`);
        await warned;
        assert.equal(sent.length, 2, "nothing sent from 127.0.0.1");
      } finally {
        await visitor.close();
      }
    });

    test("the Timezone list names zones by their current names, and a website is added in one", async () => {
      await page.goto(`${product.base}/websites`);
      await page.getByLabel("Timezone").waitFor();
      const options = await page.getByLabel("Timezone").locator("option").evaluateAll((all) => all.map((o) => o.value));
      for (const current of ["Asia/Kolkata", "Europe/Kyiv", "America/Argentina/Buenos_Aires", "UTC"]) assert.ok(options.includes(current), current);
      for (const old of ["Asia/Calcutta", "Europe/Kiev", "America/Buenos_Aires"]) assert.ok(!options.includes(old), old);
      const domain = `zone-${Date.now()}.example.com`;
      await addWebsite({ domain, name: "Ada's Kyiv shop", timezone: "Europe/Kyiv" });
      const listed = await page.request.get(`${product.base}/api/v1/websites`);
      const website = (await listed.json()).data.find((w) => w.domain === domain);
      assert.equal(website.timezone, "Europe/Kyiv");
    });

    test("on the Free plan the API keys page says the API needs a paid plan instead of a form", async () => {
      await page.getByRole("link", { name: "API keys" }).click();
      await page.getByRole("heading", { name: "API keys", level: 1 }).waitFor();
      await page.getByText("needs a paid plan").waitFor();
      assert.equal(await page.getByRole("button", { name: "Create API key" }).count(), 0);
      await accessible("/settings/api-keys (free)");
    });

    test("a key created in the page works with an HTTP client and stops working once revoked in the page", async () => {
      const [team] = await teamsOfMe();
      const plan = await fetch(`${product.base}/api/v1/teams/${team.id}/plan`, {
        method: "PUT",
        headers: { "Content-Type": "application/json", "X-Operator-Token": OPERATOR_TOKEN },
        body: JSON.stringify({ plan: "pro" }),
      });
      assert.equal(plan.status, 200);
      await page.reload();
      const form = page.locator("form", { has: page.getByRole("button", { name: "Create API key" }) });
      await form.getByLabel("Name").fill("Reporting");
      await form.getByLabel("Select", { exact: true }).check();
      // Nothing chosen under Select: said in the form's words, with the focus on Read.
      await form.getByRole("button", { name: "Create API key" }).click();
      await form.getByText("Permissions: choose at least one of Read, Write and Admin.").waitFor();
      assert.ok(await form.getByLabel("Read").evaluate((el) => el === document.activeElement), "the focus is on Read");
      await form.getByLabel("Read").check();
      await form.getByLabel("Selected teams").check();
      await form.getByLabel(/^Ada/).check();
      await accessible("/settings/api-keys (pro)");
      await screenshot("api-keys-create");
      await form.getByRole("button", { name: "Create API key" }).click();

      const dialog = page.getByRole("dialog", { name: "Your new API key" });
      await dialog.waitFor();
      await dialog.getByText("it will not be shown again").waitFor();
      const secret = (await dialog.locator("#secret-value").textContent()).trim();
      assert.match(secret, /^zv_/);
      assert.ok(await dialog.getByRole("button", { name: "Copy" }).isVisible());
      await screenshot("api-keys-secret", { mask: [dialog.locator("#secret-value")] });
      await dialog.getByRole("button", { name: "Done" }).click();
      await dialog.waitFor({ state: "detached" });
      assert.ok(!(await page.content()).includes(secret), "the secret is gone from the page once dismissed");

      const call = () => fetch(`${product.base}/api/external/v1/websites`, { headers: { Authorization: `Bearer ${secret}` } });
      assert.equal((await call()).status, 200);

      const row = page.getByRole("row", { name: /Reporting/ });
      await row.getByRole("cell", { name: "Read", exact: true }).waitFor();
      await screenshot("api-keys");
      // Every row has a "Revoke": this one is described by its key's name and hint.
      const description = await row.getByRole("button", { name: "Revoke" }).evaluate((b) =>
        b.getAttribute("aria-describedby").split(" ").map((id) => document.getElementById(id).textContent).join(" "),
      );
      assert.match(description, /^Reporting zv_\S+…\S+$/);
      await row.getByRole("button", { name: "Revoke" }).click();
      const confirm = page.getByRole("dialog", { name: /Revoke/ });
      await confirm.getByRole("button", { name: "Revoke" }).click();
      await page.getByRole("row", { name: /Reporting/ }).getByText("revoked").waitFor();
      assert.equal((await call()).status, 401);
      // A revoked key's row offers its usage alone.
      const revoked = page.getByRole("row", { name: /Reporting/ });
      assert.deepEqual(await revoked.getByRole("button").allTextContents(), ["Usage"]);
      await revoked.getByRole("button", { name: "Usage" }).click();
      const usage = page.getByRole("dialog", { name: "Usage of “Reporting”, last 30 days" });
      await usage.waitFor();
      await page.keyboard.press("Escape");
      await usage.waitFor({ state: "detached" });
    });

    test("pressing Enter three times on Create API key makes one key and shows one secret", async () => {
      const before = (await (await page.request.get(`${product.base}/api/v1/account/api-keys`)).json()).data.length;
      const form = page.locator("form", { has: page.getByRole("button", { name: "Create API key" }) });
      await form.getByLabel("Name").fill("Pressed thrice");
      await form.getByRole("button", { name: "Create API key" }).focus();
      for (let i = 0; i < 3; i++) await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog", { name: "Your new API key" });
      await dialog.waitFor();
      await dialog.getByRole("button", { name: "Done" }).click();
      await dialog.waitFor({ state: "detached" });
      assert.equal(await page.getByRole("dialog", { name: "Your new API key" }).count(), 0, "no second secret behind the first");
      const keys = (await (await page.request.get(`${product.base}/api/v1/account/api-keys`)).json()).data;
      assert.equal(keys.length, before + 1);
      assert.equal(keys.filter((k) => k.name === "Pressed thrice").length, 1);
    });

    test("a key rotated in the page without grace gives a new secret and stops the old one", async () => {
      const secretOf = async () => {
        const dialog = page.getByRole("dialog", { name: "Your new API key" });
        const secret = (await dialog.locator("#secret-value").textContent()).trim();
        await dialog.getByRole("button", { name: "Done" }).click();
        await dialog.waitFor({ state: "detached" });
        return secret;
      };
      const call = (secret) => fetch(`${product.base}/api/external/v1/websites`, { headers: { Authorization: `Bearer ${secret}` } });
      const form = page.locator("form", { has: page.getByRole("button", { name: "Create API key" }) });
      await form.getByLabel("Name").fill("Rotating");
      await form.getByRole("button", { name: "Create API key" }).click();
      const old = await secretOf();
      await page.getByRole("row", { name: /Rotating/ }).first().getByRole("button", { name: "Rotate" }).click();
      const dialog = page.getByRole("dialog", { name: /Rotate/ });
      await dialog.getByLabel("Grace period").selectOption("0");
      await accessible("/settings/api-keys (rotate)");
      await dialog.getByRole("button", { name: "Rotate" }).click();
      const fresh = await secretOf();
      assert.notEqual(fresh, old);
      assert.equal((await call(fresh)).status, 200);
      assert.equal((await call(old)).status, 401);

      // The new key's one request shows in its usage once the gateway has sent its counts.
      const row = page.getByRole("row", { name: /Rotating/ }).first();
      let summary = "";
      for (let attempt = 0; attempt < 20 && !summary.startsWith("1 requests"); attempt++) {
        await row.getByRole("button", { name: "Usage" }).click();
        const usage = page.getByRole("dialog", { name: /Usage of/ });
        await usage.getByRole("img").waitFor();
        summary = await usage.locator("#usage-summary").innerText();
        if (summary.startsWith("1 requests")) await accessible("/settings/api-keys (usage)");
        await usage.getByRole("button", { name: "Close" }).click();
        await usage.waitFor({ state: "detached" });
        if (!summary.startsWith("1 requests")) await page.waitForTimeout(300);
      }
      assert.match(summary, /^1 requests/);
    });

    test("a key edited in the page keeps its new name and permissions", async () => {
      const form = page.locator("form", { has: page.getByRole("button", { name: "Create API key" }) });
      await form.getByLabel("Name").fill("Exporter");
      await form.getByRole("button", { name: "Create API key" }).click();
      await page.getByRole("dialog", { name: "Your new API key" }).getByRole("button", { name: "Done" }).click();
      await page.getByRole("row", { name: /Exporter/ }).getByRole("button", { name: "Edit" }).click();
      const dialog = page.getByRole("dialog", { name: /Edit/ });
      await dialog.getByLabel("Name").fill("Exporter v2");
      await dialog.getByLabel("Select", { exact: true }).check();
      await dialog.getByLabel("Write").check();
      await dialog.getByRole("button", { name: "Save" }).click();
      await dialog.waitFor({ state: "detached" });
      const row = page.getByRole("row", { name: /Exporter v2/ });
      await row.getByRole("cell", { name: "Write", exact: true }).waitFor();
    });

    test("a key created with an expiry lists it and the API reports it", async () => {
      const form = page.locator("form", { has: page.getByRole("button", { name: "Create API key" }) });
      await form.getByLabel("Name").fill("Short-lived");
      const day = new Date(Date.now() + 10 * 86_400_000);
      const local = `${day.getFullYear()}-${String(day.getMonth() + 1).padStart(2, "0")}-${String(day.getDate()).padStart(2, "0")}`;
      await form.getByLabel("Expires").fill(local);
      await form.getByRole("button", { name: "Create API key" }).click();
      await page.getByRole("dialog", { name: "Your new API key" }).getByRole("button", { name: "Done" }).click();
      const row = page.getByRole("row", { name: /Short-lived/ });
      await row.getByRole("cell", { name: "active", exact: true }).waitFor();
      assert.notEqual(await row.locator('td[data-label="Expires"]').innerText(), "Never");
      const keys = (await (await page.request.get(`${product.base}/api/v1/account/api-keys`)).json()).data;
      const key = keys.find((k) => k.name === "Short-lived");
      const expires = new Date(key.expires_at);
      assert.equal(expires.getDate(), day.getDate(), "the key works through the chosen day");
    });

    test("a key limited to other addresses is refused from here, and a bad entry is named next to the field", async () => {
      const form = page.locator("form", { has: page.getByRole("button", { name: "Create API key" }) });
      await form.getByLabel("Name").fill("Office only");
      await form.getByLabel("Allowed IP addresses").fill("not-an-address");
      await form.getByRole("button", { name: "Create API key" }).click();
      await form.locator("#new-ips-error").getByText("Allowed IP addresses:").waitFor();
      await form.getByLabel("Allowed IP addresses").fill("10.0.0.0/8\n2001:db8::/32");
      await form.getByRole("button", { name: "Create API key" }).click();
      const dialog = page.getByRole("dialog", { name: "Your new API key" });
      const secret = (await dialog.locator("#secret-value").textContent()).trim();
      await dialog.getByRole("button", { name: "Done" }).click();
      const response = await fetch(`${product.base}/api/external/v1/websites`, { headers: { Authorization: `Bearer ${secret}` } });
      assert.equal(response.status, 403);
      assert.equal((await response.json()).error.code, "IP_NOT_ALLOWED");
    });

    test("with the keyboard alone, focus moves into the confirmation dialog and back to its button", async () => {
      const revoke = page.getByRole("row", { name: /Exporter v2/ }).getByRole("button", { name: "Revoke" });
      await revoke.focus();
      await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog", { name: /Revoke/ });
      await dialog.waitFor();
      assert.ok(await dialog.evaluate((d) => d.contains(document.activeElement)), "focus is inside the dialog");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
      assert.ok(await revoke.evaluate((b) => b === document.activeElement), "focus is back on the Revoke button");
      await page.getByRole("row", { name: /Exporter v2/ }).getByText("active").waitFor();
    });

    test("the team settings page saves the key policy and shows members and the audit log", async () => {
      await page.getByRole("link", { name: "Teams" }).click();
      await page.getByRole("heading", { name: "Teams", level: 1 }).waitFor();
      await accessible("/settings/teams");
      await page.getByRole("link", { name: /^Settings of/ }).click();
      await page.getByRole("heading", { name: "Members" }).waitFor();
      await page.getByRole("heading", { name: "Audit log" }).waitFor();
      await page.getByLabel("Owners and admins only").check();
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByText("Saved.").waitFor();
      const [team] = await teamsOfMe();
      assert.equal(team.api_key_policy, "admins_only");
      await page.reload();
      assert.ok(await page.getByLabel("Owners and admins only").isChecked());
      const policyChange = page.getByRole("row").filter({ hasText: "Key policy changed" }).first();
      await policyChange.getByText("team.api_key_policy_changed").waitFor();
      await accessible("/settings/teams/{id}");
    });

    test("an owner adds a member by email in the page and changes their role", async () => {
      const bob = `bob-${Date.now()}@example.com`;
      const signup = await fetch(`${product.base}/api/v1/auth/signup`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: bob, password: PASSWORD, name: "Bob" }),
      });
      assert.equal(signup.status, 201);
      const members = page.locator("#members");
      await members.getByLabel("Email").fill(bob);
      await members.getByRole("button", { name: "Add member" }).click();
      const role = page.getByLabel(`Role of ${bob}`);
      await role.waitFor();
      const row = page.getByRole("row").filter({ has: role });
      const save = row.getByRole("button", { name: "Save", exact: true });
      // Nothing to save yet: no Save in the row (the key policy's is the page's only one).
      assert.equal(await save.count(), 0);
      assert.equal(await page.getByRole("button", { name: "Save", exact: true }).count(), 1);
      // An arrow key on the focused select only chooses: nothing is sent until Save.
      const [team] = await teamsOfMe();
      const roleOf = async (who) => (await (await page.request.get(`${product.base}/api/v1/teams/${team.id}/members`)).json()).data.find((m) => m.email === who).role;
      await role.focus();
      await page.keyboard.press("ArrowUp");
      assert.equal(await role.inputValue(), "admin", "ArrowUp chose the role above");
      await save.waitFor();
      await page.waitForTimeout(300);
      assert.equal(await roleOf(bob), "member", "choosing a role sent nothing");
      await accessible("/settings/teams/{id} (role chosen, not saved)");
      // A change redraws the members once saved: wait for the drawn section to be replaced.
      const drawn = await members.elementHandle();
      await page.keyboard.press("Tab");
      assert.ok(await save.evaluate((b) => b === document.activeElement), "Save follows the select in tab order");
      await page.keyboard.press("Enter");
      await page.waitForFunction((section) => !section.isConnected, drawn);
      await page.waitForFunction((email) => document.querySelector(`select[aria-label="Role of ${email}"]`)?.value === "admin", bob);
      assert.equal(await roleOf(bob), "admin");
      // What was done is said under the heading the focus moved to.
      await members.getByRole("status").getByText(`${bob} is now an admin.`).waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.id), "members-title");
      // The audit log says whose role changed, and who changed it.
      const roleChange = page.getByRole("row").filter({ hasText: "Member's role changed" }).first();
      await roleChange.getByText(`email: ${bob} · from: member · to: admin`).waitFor();
      assert.equal(await roleChange.getByRole("cell").nth(2).textContent(), email);

      // An address without an account is said next to the Email field.
      await members.getByLabel("Email").fill(`nobody-${Date.now()}@example.com`);
      await members.getByRole("button", { name: "Add member" }).click();
      await page.locator("#member-email-error").getByText(/not found/).waitFor();
      assert.equal(await page.locator("#members").getByLabel("Email").getAttribute("aria-invalid"), "true");

      // The team's only owner cannot step down: the refusal is said next to their role.
      const mine = page.getByLabel(`Role of ${email}`);
      await mine.selectOption("member");
      await page.getByRole("row").filter({ has: mine }).getByRole("button", { name: "Save", exact: true }).click();
      const refusal = mine.locator("xpath=following-sibling::p[@role='alert']");
      await refusal.getByText(/owner/).waitFor();
      assert.equal(await mine.inputValue(), "owner");
      assert.ok(await mine.evaluate((s) => s === document.activeElement), "focus goes to the role the refusal is about");
      assert.equal(await page.getByRole("row").filter({ has: mine }).getByRole("button", { name: "Save", exact: true }).count(), 0);
      await accessible("/settings/teams/{id} (role refused)");
    });

    test("the connected apps page says how to connect an MCP client", async () => {
      await page.getByRole("link", { name: "Connected apps" }).click();
      await page.getByRole("heading", { name: "Connected apps", level: 1 }).waitFor();
      await page.getByText("No connected apps").waitFor();
      await accessible("/settings/connected-apps");
      await screenshot("connected-apps");
    });

    /** A second browser signed in as the same person; its context, to close. */
    const secondBrowser = async () => {
      const other = await browser.newContext();
      const response = await other.request.post(`${product.base}/api/v1/auth/login`, { data: { email, password: PASSWORD } });
      assert.equal(response.status(), 200);
      return other;
    };

    /** Fills and sends the password form; the page is the Password and sessions page. */
    const changePassword = async (current, next) => {
      await page.getByLabel("Current password").fill(current);
      await page.getByLabel("New password").fill(next);
      await page.getByRole("button", { name: "Change password" }).click();
    };

    test("a password changed in the page ends the other sessions, keeps this one, and a wrong current password is said next to its field", async () => {
      const other = await secondBrowser();
      await page.getByRole("link", { name: "Password and sessions" }).click();
      await page.getByRole("heading", { name: "Password and sessions", level: 1 }).waitFor();
      const sessions = page.getByRole("region", { name: "Where you are signed in: this session, then the others newest first" });
      await sessions.getByRole("button", { name: "End session" }).first().waitFor();
      assert.equal(await sessions.getByText("This session", { exact: true }).count(), 1);

      await changePassword("not my password", "a brand new passphrase");
      const error = page.getByText("Current password: is not your current password");
      await error.waitFor();
      assert.equal(await page.getByLabel("Current password").evaluate((el) => el === document.activeElement), true);
      assert.equal((await other.request.get(`${product.base}/api/v1/me`)).status(), 200);

      await changePassword(PASSWORD, "a brand new passphrase");
      let restored = false;
      try {
        await page.getByRole("status").filter({ hasText: /^Password changed; \d+ other sessions? ended\.$/ }).waitFor();
        assert.equal(await page.getByRole("heading", { name: "Change password" }).evaluate((el) => el === document.activeElement), true);
        assert.equal((await other.request.get(`${product.base}/api/v1/me`)).status(), 401);
        assert.equal(await sessions.getByRole("button", { name: "End session" }).count(), 0);
        assert.equal((await page.request.get(`${product.base}/api/v1/me`)).status(), 200);
        await accessible("/settings/password");
        await screenshot("password");

        // Back to the password the other tests log in with.
        await changePassword("a brand new passphrase", PASSWORD);
        await page.getByRole("status").filter({ hasText: "Password changed; 0 other sessions ended." }).waitFor();
        restored = true;
      } finally {
        // The later tests log in with PASSWORD, whatever failed above.
        if (!restored) {
          const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
          await page.request.put(`${product.base}/api/v1/account/password`, {
            headers: { "x-csrf-token": csrf },
            data: { current_password: "a brand new passphrase", new_password: PASSWORD },
          });
        }
      }
      await other.close();
    });

    test("a session ended on the Password and sessions page is logged out at once, after a confirmation", async () => {
      const other = await secondBrowser();
      await page.goto(`${product.base}/settings/password`);
      const sessions = page.getByRole("region", { name: "Where you are signed in: this session, then the others newest first" });
      // The newest session but this one is the other browser's; each button is described by its row.
      const button = sessions.getByRole("button", { name: "End session" }).first();
      assert.match(await button.evaluate((b) => b.getAttribute("aria-describedby")), /^session-\S+-signed-in session-\S+-browser$/);
      await button.click();
      const dialog = page.getByRole("dialog", { name: "End this session?" });
      await dialog.getByRole("button", { name: "End session" }).click();
      await page.getByRole("status").filter({ hasText: /^Ended the session signed in on / }).waitFor();
      assert.equal(await page.getByRole("heading", { name: "Sessions", exact: true }).evaluate((el) => el === document.activeElement), true);
      assert.equal((await other.request.get(`${product.base}/api/v1/me`)).status(), 401);
      assert.equal((await page.request.get(`${product.base}/api/v1/me`)).status(), 200);
      await other.close();
    });

    test("a state-changing call with the session cookie is refused from another origin or without the CSRF token", async () => {
      const session = (await context.cookies()).find((c) => c.name === "zenovay_session").value;
      const post = (headers) =>
        fetch(`${product.base}/api/v1/teams`, {
          method: "POST",
          headers: { Cookie: `zenovay_session=${session}`, "Content-Type": "application/json", ...headers },
          body: JSON.stringify({ name: "Forged" }),
        });
      assert.equal((await post({ Origin: "http://evil.example" })).status, 403);
      assert.equal((await post({ Origin: product.base })).status, 403, "no CSRF token");
      const fromPage = await page.evaluate(async () => {
        const response = await fetch("/api/v1/teams", { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"name":"Forged"}' });
        return response.status;
      });
      assert.equal(fromPage, 403);
      const names = (await teamsOfMe()).map((t) => t.name);
      assert.ok(!names.includes("Forged"));
    });

    test("a website's page shows the figures the API answers, and a clicked page filters it", async () => {
      await page.goto(`${product.base}/websites`);
      await page.getByRole("heading", { name: "Websites", level: 1 }).waitFor();
      const domain = `stats-${Date.now()}.example.com`;
      await addWebsite({ domain, name: "Ada's shop" });
      // Two visitors (told apart by their browsers): one reads two pages, the other one.
      const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
      const safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
      for (const [agent, path] of [[firefox, "/"], [firefox, "/pricing"], [safari, "/pricing"]]) {
        const response = await page.request.post(`${product.base}/api/event`, {
          headers: { "user-agent": agent, "content-type": "application/json" },
          data: { domain, name: "pageview", url: `https://${domain}${path}` },
        });
        assert.equal(response.status(), 202);
      }
      await page.getByRole("link", { name: "Statistics of Ada's shop" }).click();
      await page.getByRole("heading", { name: "Ada's shop · statistics", level: 1 }).waitFor();
      const id = new URL(page.url()).pathname.split("/")[2];
      Object.assign(shop, { id, domain });
      const figure = (metric) => page.locator(`.figure[data-metric="${metric}"] .value`).textContent();
      const answer = async (query) => (await (await page.request.get(`${product.base}/api/v1/websites/${id}/stats?${query}`)).json()).data;
      const all = await answer("period=30d");
      assert.equal(all.figures.pageviews.value, 3);
      for (const metric of ["visitors", "visits", "pageviews"]) assert.equal(await figure(metric), String(all.figures[metric].value), metric);
      await accessible(`/websites/${id}`);
      await screenshot("website");

      // With the keyboard: the pressed row goes with the redraw, and focus moves to the new
      // filter's chip rather than to the top of the page.
      await page.locator('[data-breakdown="pages"]').getByRole("button", { name: "/pricing" }).focus();
      await page.keyboard.press("Enter");
      const chip = page.getByRole("button", { name: "Remove filter: Top pages is /pricing" });
      await chip.waitFor();
      await page.waitForFunction(() => document.activeElement?.textContent === "Remove filter: Top pages is /pricing");
      const filtered = await answer("period=30d&filters=event:page%3D%3D/pricing");
      assert.equal(filtered.figures.pageviews.value, 2);
      await page.locator('.figure[data-metric="pageviews"] .value', { hasText: "2" }).waitFor();
      for (const metric of ["visitors", "visits", "pageviews"]) assert.equal(await figure(metric), String(filtered.figures[metric].value), metric);
      await accessible(`/websites/${id} filtered`);

      await page.getByLabel("Period").selectOption("day");
      // The view is drawn (and its address written) before its chip is pressed: a redraw after
      // the focus moved would take the focused chip away.
      await page.waitForURL(/period=day/);
      await page.getByRole("button", { name: "Remove filter: Top pages is /pricing" }).focus();
      await page.keyboard.press("Enter");
      await page.locator('.figure[data-metric="pageviews"] .value', { hasText: "3" }).waitFor();
      // No filter left: focus goes to the period picker.
      const picker = await page.getByLabel("Period").elementHandle();
      await page.waitForFunction((element) => document.activeElement === element, picker);
    });

    /** A call of the dashboard API with the page's session cookie and CSRF token. */
    const dashboard = async (method, path, data) => {
      const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");
      const response = await page.request.fetch(`${product.base}/api/v1${path}`, {
        method,
        headers: { "X-CSRF-Token": csrf, Origin: product.base },
        data,
      });
      return { status: response.status(), body: await response.json() };
    };

    /** A read key of the signed-in person, made through the dashboard API. */
    const readKey = async (name) => {
      const created = await dashboard("POST", "/account/api-keys", { name, permissions: ["read"], teams: "all" });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.data.key;
    };

    /** What the page shows for each headline figure, and for each top page. */
    const shown = async () => {
      const figures = {};
      for (const metric of ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"]) {
        figures[metric] = await page.locator(`.figure[data-metric="${metric}"] .value`).textContent();
      }
      const pages = await page.locator('[data-breakdown="pages"] tbody tr').evaluateAll((rows) =>
        rows.map((row) => [...row.querySelectorAll("td")].map((cell) => cell.textContent)),
      );
      return { figures, pages };
    };

    /** A Stats API v1 query for a period like the page's: v1's `30d` ends the day before `date`, the page's today. */
    const withEnd = (query) => {
      if (!/(^|[?&])period=30d(&|$)/.test(query)) return query;
      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      return `${query}&date=${tomorrow}`;
    };

    /** The Stats API's answer to the same question, written as the page writes it. */
    const statsApi = async (key, query) => {
      const get = async (path) => {
        const response = await fetch(`${product.base}/api/external/v1/stats/${path}&${withEnd(query)}`, { headers: { Authorization: `Bearer ${key}` } });
        assert.equal(response.status, 200, path);
        return (await response.json()).data;
      };
      const aggregate = await get(`aggregate?site_id=${shop.id}&metrics=visitors,visits,pageviews,bounce_rate,visit_duration`);
      const breakdown = await get(`breakdown?site_id=${shop.id}&property=event:page&metrics=visitors&limit=10`);
      const r = aggregate.results;
      const d = r.visit_duration.value;
      return {
        figures: {
          visitors: String(r.visitors.value),
          visits: String(r.visits.value),
          pageviews: String(r.pageviews.value),
          bounce_rate: `${r.bounce_rate.value}%`,
          visit_duration: `${Math.floor(d / 60)}m ${d % 60}s`,
        },
        pages: breakdown.results.map((row) => [row.page, String(row.visitors)]),
      };
    };

    test("the statistics page shows exactly what the Stats API answers for the same site, period and filter", async () => {
      const key = await readKey("Stats check");
      await page.goto(`${product.base}/websites/${shop.id}`);
      await page.getByRole("heading", { name: "Ada's shop · statistics", level: 1 }).waitFor();
      await page.locator('.figure[data-metric="pageviews"] .value', { hasText: "3" }).waitFor();
      assert.deepEqual(await shown(), await statsApi(key, "period=30d"));

      await page.locator('[data-breakdown="pages"]').getByRole("button", { name: "/pricing" }).click();
      await page.getByRole("button", { name: "Remove filter: Top pages is /pricing" }).waitFor();
      await page.locator('.figure[data-metric="pageviews"] .value', { hasText: "2" }).waitFor();
      assert.deepEqual(await shown(), await statsApi(key, `period=30d&filters=${encodeURIComponent("event:page==/pricing")}`));
      await page.getByRole("button", { name: "Remove filter: Top pages is /pricing" }).click();
      await page.locator('.figure[data-metric="pageviews"] .value', { hasText: "3" }).waitFor();
    });

    test("a clicked row filters by its value as written, even one holding | or *", async () => {
      await page.goto(`${product.base}/websites`);
      await page.getByRole("heading", { name: "Websites", level: 1 }).waitFor();
      const domain = `pipes-${Date.now()}.example.com`;
      await addWebsite({ domain, name: "Pipes" });
      // Four visitors, one page each: the first page's name reads as "/p or /x" and the last as
      // "any page" in the Stats API v1's filter syntax.
      const pages = ["/p|/x", "/p", "/x", "/*"];
      for (const [i, path] of pages.entries()) {
        const agent = `Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/${120 + i}.0`;
        const response = await page.request.post(`${product.base}/api/event`, {
          headers: { "user-agent": agent, "content-type": "application/json" },
          data: { domain, name: "pageview", url: `https://${domain}${path}` },
        });
        assert.equal(response.status(), 202);
      }
      await page.getByRole("link", { name: "Statistics of Pipes" }).click();
      const visitors = (count) => page.locator('.figure[data-metric="visitors"] .value', { hasText: new RegExp(`^${count}$`) }).waitFor();
      await visitors(4);
      for (const path of ["/p|/x", "/*"]) {
        await page.locator('[data-breakdown="pages"]').getByRole("button", { name: path, exact: true }).click();
        await page.getByRole("button", { name: `Remove filter: Top pages is ${path}` }).waitFor();
        await visitors(1);
        await page.getByRole("button", { name: `Remove filter: Top pages is ${path}` }).click();
        await visitors(4);
      }
    });

    test("the page's address keeps its period and filters, so a reload and Back show the same view", async () => {
      const pageviews = (count) => page.locator('.figure[data-metric="pageviews"] .value', { hasText: String(count) }).waitFor();
      const address = () => new URL(page.url()).searchParams;
      const chip = page.getByRole("button", { name: "Remove filter: Top pages is /pricing" });
      await page.goto(`${product.base}/websites/${shop.id}`);
      await pageviews(3);
      await page.getByLabel("Period").selectOption("7d");
      await page.waitForURL((url) => url.searchParams.get("period") === "7d");
      await page.locator('[data-breakdown="pages"]').getByRole("button", { name: "/pricing" }).click();
      await page.waitForURL((url) => url.searchParams.getAll("filter").join() === "event:page==/pricing");
      await pageviews(2);
      assert.equal(address().get("period"), "7d");

      await page.reload();
      await chip.waitFor();
      await pageviews(2);
      assert.equal(await page.getByLabel("Period").inputValue(), "7d");

      await page.goBack();
      await pageviews(3);
      assert.equal(await chip.count(), 0);
      assert.equal(await page.getByLabel("Period").inputValue(), "7d");
      await page.goBack();
      await page.waitForURL((url) => !url.searchParams.has("period"));
      assert.equal(await page.getByLabel("Period").inputValue(), "30d");
      await page.goForward();
      await page.waitForURL((url) => url.searchParams.get("period") === "7d");
      assert.equal(await page.getByLabel("Period").inputValue(), "7d");

      // What the page would not offer is dropped, the rest kept.
      await page.goto(`${product.base}/websites/${shop.id}?period=bogus&filter=visit:nowhere==x&filter=${encodeURIComponent("event:page==/pricing")}`);
      await chip.waitFor();
      await pageviews(2);
      assert.equal(await page.getByLabel("Period").inputValue(), "30d");
      assert.deepEqual([...address().entries()], [["filter", "event:page==/pricing"]]);
    });

    test("a view whose statistics cannot be loaded says so in their place, and the picker stays to try again", async () => {
      const pageviews = (count) => page.locator('.figure[data-metric="pageviews"] .value', { hasText: String(count) }).waitFor();
      await page.goto(`${product.base}/websites/${shop.id}`);
      await pageviews(3);
      const refused = (route) =>
        route.fulfill({
          status: 503,
          contentType: "application/json",
          body: JSON.stringify({ success: false, error: { code: "SERVICE_UNAVAILABLE", message: "the database is unavailable, try again shortly" } }),
        });
      await page.route("**/stats?*", refused);
      await page.getByLabel("Period").selectOption("7d");
      await page.getByRole("alert").filter({ hasText: "Could not load these statistics: the database is unavailable, try again shortly" }).waitFor();
      assert.equal(await page.getByLabel("Period").inputValue(), "7d", "the picker stays");
      await page.unroute("**/stats?*", refused);
      await page.getByRole("button", { name: "Try again" }).click();
      await pageviews(3);
      assert.equal(await page.getByRole("alert").filter({ hasText: "Could not load" }).count(), 0);
      assert.ok(await page.getByLabel("Period").evaluate((picker) => picker === document.activeElement), "focus goes back to the picker");

      // A filter added by a view that failed is shown beside the one before it, and each chip
      // removes its own filter.
      await page.locator('[data-breakdown="pages"]').getByRole("button", { name: "/pricing" }).click();
      await pageviews(2);
      await page.route("**/stats?*", refused);
      const browser = page.locator('[data-breakdown="browsers"] tbody button').first();
      const name = await browser.textContent();
      await browser.click();
      await page.getByRole("alert").filter({ hasText: "Could not load these statistics" }).waitFor();
      const pricing = page.getByRole("button", { name: "Remove filter: Top pages is /pricing" });
      await pricing.waitFor();
      await page.getByRole("button", { name: `Remove filter: Browsers is ${name}` }).waitFor();
      assert.ok(await page.getByRole("button", { name: "Try again" }).evaluate((b) => b === document.activeElement), "focus goes to Try again");
      await page.unroute("**/stats?*", refused);
      await pricing.click();
      await page.waitForURL((url) => url.searchParams.getAll("filter").join() === `visit:browser==${name}`);
      await page.getByRole("button", { name: `Remove filter: Browsers is ${name}` }).waitFor();
      assert.equal(await pricing.count(), 0);
    });

    /** The rows of a section's table on the page, cell by cell. */
    const sectionRows = (section) =>
      page.locator(`[data-section="${section}"] tbody tr`).evaluateAll((rows) =>
        rows.map((row) => [...row.querySelectorAll("td")].map((cell) => cell.textContent)),
      );

    test("goals added in the page and custom events show what the Stats API's breakdowns answer", async () => {
      const key = await readKey("Goals check");
      await page.goto(`${product.base}/websites/${shop.id}`);
      await page.getByRole("heading", { name: "Goals", level: 2 }).waitFor();
      await page.getByText("No goals yet.").waitFor();
      // A form error appears next to the field it names.
      await page.getByRole("button", { name: "Add goal" }).click();
      await page.locator("#goal-event-error:not([hidden])").waitFor();
      await page.getByLabel("Event name").fill("Signup");
      await page.getByRole("button", { name: "Add goal" }).click();
      await page.getByText("Manage goals (1)").waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.id), "goals-title", "focus moves to the redrawn section");
      // The same two visitors as before (same browsers): one signs up twice, the other once.
      const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
      const safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
      for (const [agent, plan] of [[firefox, "pro"], [firefox, "pro"], [safari, "free"]]) {
        const response = await page.request.post(`${product.base}/api/event`, {
          headers: { "user-agent": agent, "content-type": "application/json" },
          data: { domain: shop.domain, name: "Signup", url: `https://${shop.domain}/pricing`, props: plan === "free" ? { plan, source: "ad" } : { plan } },
        });
        assert.equal(response.status(), 202);
      }
      await page.reload();
      await page.locator('[data-section="goals"] tbody tr').first().waitFor();
      const get = async (path) => {
        const response = await fetch(`${product.base}/api/external/v1/stats/${withEnd(path)}`, { headers: { Authorization: `Bearer ${key}` } });
        assert.equal(response.status, 200, path);
        return (await response.json()).data.results;
      };
      const goals = await get(`breakdown?period=30d&site_id=${shop.id}&property=event:goal&metrics=visitors,events,conversion_rate`);
      assert.deepEqual(
        await sectionRows("goals"),
        goals.map((row) => [row.goal, String(row.visitors), String(row.events), `${row.conversion_rate}%`]),
      );
      assert.deepEqual(await sectionRows("goals"), [["Signup", "2", "3", "100%"]]);
      const events = await get(`breakdown?period=30d&site_id=${shop.id}&property=event:name&metrics=visitors,events`);
      assert.deepEqual(
        await sectionRows("custom-events"),
        events.filter((row) => row.name !== "pageview").map((row) => [row.name, String(row.visitors), String(row.events)]),
      );
      await page.getByText("Choose a custom event above").waitFor();

      // Choosing a custom event shows its properties, as the Stats API breaks them down.
      await page.locator('[data-section="custom-events"]').getByRole("button", { name: "Signup" }).click();
      await page.getByRole("button", { name: "Remove filter: Event is Signup" }).waitFor();
      await page.getByLabel("Property", { exact: true }).waitFor();
      assert.equal(await page.getByLabel("Property", { exact: true }).inputValue(), "plan");
      const props = await get(`breakdown?period=30d&site_id=${shop.id}&property=event:props:plan&metrics=visitors,events&filters=${encodeURIComponent("event:name==Signup")}`);
      assert.deepEqual(
        await sectionRows("properties"),
        props.map((row) => [row.plan, String(row.visitors), String(row.events)]),
      );
      assert.deepEqual((await sectionRows("properties")).sort(), [["free", "1", "1"], ["pro", "1", "2"]]);
      await accessible(`/websites/${shop.id} with goals and properties`);
      await screenshot("website-goals");
      // The arrow keys step through the properties, and focus stays on the picker.
      const picker = page.getByLabel("Property", { exact: true });
      await picker.focus();
      await page.keyboard.press("ArrowDown");
      await page.locator('[data-section="properties"] th', { hasText: "source" }).waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.id), "property-pick");
      assert.equal(await picker.inputValue(), "source");
      await page.keyboard.press("ArrowUp");
      await page.locator('[data-section="properties"]').getByRole("button", { name: "free" }).waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.id), "property-pick");
      await page.locator('[data-section="properties"]').getByRole("button", { name: "free" }).click();
      await page.getByRole("button", { name: "Remove filter: plan is free" }).waitFor();
      const free = await get(`aggregate?period=30d&site_id=${shop.id}&metrics=visitors&filters=${encodeURIComponent("event:name==Signup;event:props:plan==free")}`);
      await page.locator('.figure[data-metric="visitors"] .value', { hasText: String(free.visitors.value) }).waitFor();
      await page.getByRole("button", { name: "Remove filter: plan is free" }).click();
      await page.getByRole("button", { name: "Remove filter: Event is Signup" }).click();
      await page.getByText("Choose a custom event above").waitFor();

      // A goal row filters the whole page like other rows do.
      await page.locator('[data-section="goals"]').getByRole("button", { name: "Signup" }).click();
      await page.getByRole("button", { name: "Remove filter: Goal is Signup" }).waitFor();
      const filtered = await get(`aggregate?period=30d&site_id=${shop.id}&metrics=visitors&filters=${encodeURIComponent("event:goal==Signup")}`);
      assert.equal(await page.locator('.figure[data-metric="visitors"] .value').textContent(), String(filtered.visitors.value));
      await page.getByRole("button", { name: "Remove filter: Goal is Signup" }).click();
      await page.locator('.figure[data-metric="pageviews"] .value', { hasText: "3" }).waitFor();

      // A goal is deleted after a confirmation; its events stay.
      await page.getByText("Manage goals (1)").click();
      await page.getByRole("button", { name: "Delete goal Signup" }).click();
      await page.getByRole("dialog", { name: "Delete goal?" }).getByRole("button", { name: "Delete" }).click();
      await page.getByText("No goals yet.").waitFor();
      // The last goal gone, focus is on the section's heading, not lost to the page's body.
      await page.waitForFunction(() => document.activeElement?.id === "goals-title");
      assert.deepEqual((await sectionRows("custom-events")).map(([name]) => name), ["Signup"]);
    });

    test("the visitors right now are refreshed in place, without reloading the page", async () => {
      // A tab of its own whose clock the test moves on, so that the 30-second refresh comes now.
      const viewer = await context.newPage();
      try {
        await viewer.clock.install();
        await viewer.goto(`${product.base}/websites/${shop.id}`);
        const now = viewer.getByRole("status").filter({ hasText: "visitors right now" });
        await now.getByText("2 visitors right now").waitFor();
        await viewer.evaluate(() => (window.notReloaded = true));
        const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        const sent = await viewer.request.post(`${product.base}/api/event`, {
          headers: { "user-agent": chrome, "content-type": "application/json" },
          data: { domain: shop.domain, name: "pageview", url: `https://${shop.domain}/` },
        });
        assert.equal(sent.status(), 202);
        let text = "";
        for (let attempt = 0; attempt < 20 && !text.startsWith("3 "); attempt++) {
          await viewer.clock.runFor(30_000);
          await viewer.waitForTimeout(200);
          text = await now.textContent();
        }
        assert.equal(text, "3 visitors right now");
        assert.equal(await viewer.evaluate(() => window.notReloaded), true, "the page was not reloaded");
      } finally {
        await viewer.close();
      }
    });

    test("a custom range is checked next to its fields, then shows what the Stats API answers for those days", async () => {
      const key = await readKey("Custom range check");
      const day = (offset) => {
        const d = new Date(Date.now() + offset * 86_400_000);
        return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}-${String(d.getUTCDate()).padStart(2, "0")}`;
      };
      // The two days are sent with Enter from either field.
      await page.getByLabel("Period").focus();
      await page.getByLabel("Period").selectOption("custom");
      const range = page.getByRole("form", { name: "Custom range" });
      await range.waitFor();
      // "To" starts on today where the site is, whatever the browser's zone.
      const siteZone = (await (await page.request.get(`${product.base}/api/v1/websites`)).json()).data.find((w) => w.id === shop.id).timezone;
      const siteToday = new Intl.DateTimeFormat("en-CA", { timeZone: siteZone }).format(new Date());
      assert.equal(await page.getByLabel("To", { exact: true }).inputValue(), siteToday);
      // Focus stays on the picker, whose arrow keys step through the periods; the days come next.
      assert.ok(await page.getByLabel("Period").evaluate((el) => el === document.activeElement), "focus stays on the picker");
      await page.keyboard.press("Tab");
      assert.ok(await page.getByLabel("From", { exact: true }).evaluate((el) => el === document.activeElement), "the first day comes next");
      await page.getByLabel("To", { exact: true }).fill("");
      await page.keyboard.press("Enter");
      await range.locator("#range-from-error").getByText("From:").waitFor();
      assert.equal(await page.getByLabel("From", { exact: true }).getAttribute("aria-invalid"), "true");
      await page.getByLabel("From", { exact: true }).fill(day(0));
      await page.getByLabel("To", { exact: true }).fill(day(-3));
      await page.getByLabel("To", { exact: true }).press("Enter");
      await range.locator("#range-to-error").getByText("must not be before").waitFor();
      await accessible(`/websites/${shop.id} (custom range refused)`);

      await page.getByLabel("From", { exact: true }).fill(day(-3));
      await page.getByLabel("To", { exact: true }).fill(day(0));
      await page.getByLabel("To", { exact: true }).press("Enter");
      // One point a day in the chart's table of figures: the range is shown.
      await page.waitForFunction(() => document.querySelectorAll("details table tbody tr").length === 4);
      assert.equal(await range.locator(".error:not([hidden])").count(), 0);
      assert.deepEqual(await shown(), await statsApi(key, `period=custom&date=${day(-3)},${day(0)}`));
      await screenshot("website-custom-range");
    });

    test("the team settings page shows the plan, its limits and this month's usage the API reports", async () => {
      const key = await readKey("Usage check");
      const usage = await fetch(`${product.base}/api/external/v1/usage`, { headers: { Authorization: `Bearer ${key}` } });
      assert.equal(usage.status, 200);
      const reported = (await usage.json()).data;
      const [team] = await teamsOfMe();
      await page.goto(`${product.base}/settings/teams/${team.id}`);
      const plan = page.getByRole("region", { name: "Plan and usage" });
      await plan.waitFor();
      await plan.getByText("Pro", { exact: true }).waitFor();
      await plan.getByText(reported.limits.requests_per_month.toLocaleString("en-US"), { exact: true }).first().waitFor();
      const meter = page.getByRole("meter", { name: `API requests this month by ${email}` });
      assert.equal(Number(await meter.getAttribute("value")), reported.usage.requests_this_month);
      assert.equal(Number(await meter.getAttribute("max")), reported.limits.requests_per_month);
      await page.getByRole("meter", { name: `MCP tool calls today by ${email}` }).waitFor();
      await accessible("/settings/teams/{id} (plan and usage)");
      await screenshot("team-settings");
    });

    test("a long list of keys is paged, and paging with the keyboard keeps focus on the pager", async () => {
      // Newest first, ten a page: the first of eleven is the first key of page 2.
      for (let i = 0; i < 11; i++) await readKey(`Batch ${i}`);
      await page.goto(`${product.base}/settings/api-keys`);
      const pager = page.getByRole("navigation", { name: "API key pages" });
      await pager.getByText(/^Page 1 of \d+$/).waitFor();
      assert.equal(await page.getByRole("table", { name: "Your API keys" }).locator("tbody tr").count(), 10);
      const pages = Number((await pager.getByRole("status").textContent()).split(" of ")[1]);
      await pager.getByRole("button", { name: "Next" }).focus();
      for (let n = 2; n <= pages; n++) {
        await page.keyboard.press("Enter");
        await pager.getByText(`Page ${n} of ${pages}`).waitFor();
      }
      assert.ok(await pager.getByRole("button", { name: "Previous" }).evaluate((b) => b === document.activeElement), "focus moves to Previous once Next is disabled");
      await accessible("/settings/api-keys (last page)");

      // A key revoked on page 2 is shown there, revoked, and the page says so.
      await page.goto(`${product.base}/settings/api-keys`);
      await pager.getByRole("button", { name: "Next" }).click();
      await pager.getByText(`Page 2 of ${pages}`).waitFor();
      const row = page.getByRole("row", { name: /Batch 0\b/ });
      await row.getByRole("button", { name: "Revoke" }).click();
      await page.getByRole("dialog", { name: /Revoke/ }).getByRole("button", { name: "Revoke" }).click();
      await page.getByRole("status").filter({ hasText: "Revoked “Batch 0”" }).waitFor();
      await pager.getByText(`Page 2 of ${pages}`).waitFor();
      await row.getByText("revoked").waitFor();
    });

    test("the audit log's Next pressed quicker than its pages arrive steps a page a press and shows the last page asked for", async () => {
      const [team] = await teamsOfMe();
      // Five pages and more of entries: a key renamed again and again.
      const created = await dashboard("POST", "/account/api-keys", { name: "Renamed 0", permissions: ["read"], teams: "all" });
      assert.equal(created.status, 201);
      for (let i = 1; i <= 100; i++) {
        assert.equal((await dashboard("PATCH", `/account/api-keys/${created.body.data.api_key.id}`, { name: `Renamed ${i}` })).status, 200);
      }
      const log = await dashboard("GET", `/teams/${team.id}/audit-log?per_page=20`);
      const pages = Math.ceil(log.body.pagination.total / 20);
      assert.ok(pages >= 6, `${pages} pages`);
      // Pages asked for later answer sooner, so that answers come back in the reverse order.
      const asked = [];
      const slow = async (route) => {
        const n = Number(new URL(route.request().url()).searchParams.get("page"));
        asked.push(n);
        await new Promise((resolve) => setTimeout(resolve, n === 1 ? 0 : 900 - 150 * n));
        await route.continue();
      };
      await page.route("**/audit-log?*", slow);
      try {
        await page.goto(`${product.base}/settings/teams/${team.id}`);
        const pager = page.getByRole("navigation", { name: "Audit log pages" });
        await pager.getByText(`Page 1 of ${pages}`).waitFor();
        await pager.getByRole("button", { name: "Next" }).focus();
        for (let i = 0; i < 4; i++) await page.keyboard.press("Enter");
        await pager.getByText(`Page 5 of ${pages}`).waitFor();
        // Every answer has come by now; none but the last asked for was drawn.
        await page.waitForTimeout(1000);
        assert.equal(await pager.getByRole("status").textContent(), `Page 5 of ${pages}`);
        assert.deepEqual(asked, [1, 2, 3, 4, 5]);
        assert.ok(await pager.getByRole("button", { name: "Next" }).evaluate((b) => b === document.activeElement), "focus stays on Next");
      } finally {
        await page.unroute("**/audit-log?*", slow);
      }
    });

    /** A dashboard call with a session token, as an API client makes it. */
    const asClient = async (token, method, path, body) => {
      const response = await fetch(`${product.base}/api/v1${path}`, {
        method,
        headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    };

    /**
     * Someone else, signed up through the API and logged in through the page in a browser of
     * their own, whose requests and errors are watched as the main tab's are.
     */
    const someone = async (name) => {
      const address = `${name.toLowerCase()}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
      const signup = await asClient(null, "POST", "/auth/signup", { email: address, password: PASSWORD, name });
      assert.equal(signup.status, 201, JSON.stringify(signup.body));
      const own = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      own.on("request", (request) => {
        const url = request.url();
        if (!url.startsWith("data:") && !url.startsWith("about:") && new URL(url).origin !== new URL(product.base).origin) foreignRequests.push(url);
      });
      await own.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
      });
      const tab = await own.newPage();
      tab.on("console", (message) => {
        if (message.type() === "error" && !/Failed to load resource/.test(message.text())) pageErrors.push(`${name}: ${message.text()}`);
      });
      tab.on("pageerror", (error) => pageErrors.push(`${name}: ${error}`));
      await tab.goto(`${product.base}/login`);
      await tab.getByLabel("Email").fill(address);
      await tab.getByLabel("Password").fill(PASSWORD);
      await tab.getByRole("button", { name: "Log in" }).click();
      await tab.waitForURL(`${product.base}/websites`);
      const teams = (await asClient(signup.body.data.session_token, "GET", "/teams")).body.data;
      return { page: tab, context: own, email: address, token: signup.body.data.session_token, teamId: teams[0].id };
    };

    test("the header groups its links: Settings holds API keys and Teams, Account holds Connected apps and Password and sessions", async () => {
      await page.goto(`${product.base}/websites`);
      const nav = page.getByRole("navigation", { name: "Console" });
      const settings = nav.getByRole("list", { name: "Settings", exact: true });
      assert.deepEqual(await settings.getByRole("link").allTextContents(), ["API keys", "Teams"]);
      const account = nav.getByRole("list", { name: "Account", exact: true });
      assert.deepEqual(await account.getByRole("link").allTextContents(), ["Connected apps", "Password and sessions"]);
      // The groups' names are on screen, not only said.
      assert.ok(await nav.getByText("Settings", { exact: true }).isVisible());
      assert.ok(await nav.getByText("Account", { exact: true }).isVisible());
      await settings.getByRole("link", { name: "Teams" }).click();
      await page.getByRole("heading", { name: "Teams", level: 1 }).waitFor();
      assert.equal(await settings.getByRole("link", { name: "Teams" }).getAttribute("aria-current"), "page");
    });

    test("the team settings page puts the key policy, plan, members and audit log under Security & access", async () => {
      const [team] = await teamsOfMe();
      await page.goto(`${product.base}/settings/teams/${team.id}`);
      const security = page.getByRole("region", { name: "Security & access" });
      await security.getByRole("heading", { name: "Security & access", level: 2 }).waitFor();
      for (const name of ["API key policy", "Plan and usage", "Members", "Audit log"]) {
        await security.getByRole("heading", { name, level: 3, exact: true }).waitFor();
      }
    });

    test("a website is renamed and moved to another time zone with Edit, and deleted after a confirmation", async () => {
      const key = await readKey("Website edit check");
      await page.goto(`${product.base}/websites`);
      const domain = `edit-${Date.now()}.example.com`;
      await page.getByLabel("Domain").fill(domain);
      await page.getByLabel("Name").fill("Temporary site");
      await page.getByLabel("Timezone").selectOption("UTC");
      await page.getByRole("button", { name: "Add website" }).click();
      const card = page.getByRole("article", { name: "Temporary site" });
      await card.waitFor();
      const id = (await (await page.request.get(`${product.base}/api/v1/websites`)).json()).data.find((w) => w.domain === domain).id;
      const external = async () => {
        const response = await fetch(`${product.base}/api/external/v1/websites/${id}`, { headers: { Authorization: `Bearer ${key}` } });
        return { status: response.status, data: (await response.json()).data };
      };

      // Edit: focus moves into the dialog; a missing name is said next to its field; Save.
      await card.getByRole("button", { name: "Edit", exact: true }).click();
      const dialog = page.getByRole("dialog", { name: "Edit “Temporary site”" });
      await dialog.waitFor();
      assert.ok(await dialog.evaluate((d) => d.contains(document.activeElement)), "focus is inside the dialog");
      assert.equal(await dialog.getByLabel("Timezone").inputValue(), "UTC");
      await dialog.getByLabel("Name").fill("");
      await dialog.getByRole("button", { name: "Save" }).click();
      await dialog.getByText("Name is required.").waitFor();
      assert.equal(await dialog.getByLabel("Name").getAttribute("aria-invalid"), "true");
      await dialog.getByLabel("Name").fill("Renamed site");
      await dialog.getByLabel("Timezone").selectOption("Europe/Berlin");
      await accessible("/websites (edit a website)");
      await dialog.getByRole("button", { name: "Save" }).click();
      await dialog.waitFor({ state: "detached" });
      const renamed = page.getByRole("article", { name: "Renamed site" });
      await renamed.getByText(/Europe\/Berlin/).waitFor();
      await page.waitForFunction(() => document.activeElement?.textContent === "Renamed site");
      const seen = await external();
      assert.equal(seen.status, 200);
      assert.equal(seen.data.name, "Renamed site");
      assert.equal(seen.data.timezone, "Europe/Berlin");

      // Delete: Escape keeps the website and gives focus back; confirming deletes it.
      const remove = renamed.getByRole("button", { name: "Delete", exact: true });
      await remove.focus();
      await page.keyboard.press("Enter");
      const confirm = page.getByRole("dialog", { name: "Delete “Renamed site”?" });
      await confirm.waitFor();
      await page.keyboard.press("Escape");
      await confirm.waitFor({ state: "detached" });
      assert.ok(await remove.evaluate((b) => b === document.activeElement), "focus is back on Delete");
      assert.equal((await external()).status, 200);
      await remove.click();
      await confirm.getByRole("button", { name: "Delete" }).click();
      await page.getByRole("article", { name: "Renamed site" }).waitFor({ state: "detached" });
      await page.waitForFunction(() => document.activeElement?.id === "list-title");
      assert.equal(new URL(page.url()).pathname, "/websites");
      assert.equal((await external()).status, 404);
    });

    test("a team is created on the Teams page; a plain member leaves it, and its last owner is told why they cannot", async () => {
      const carol = await someone("Carol");
      const dan = await someone("Dan");
      try {
        // Carol creates a team: its link is focused in the list drawn anew.
        await carol.page.getByRole("link", { name: "Teams" }).click();
        await carol.page.getByRole("heading", { name: "Create a team" }).waitFor();
        await carol.page.getByRole("button", { name: "Create team" }).click();
        await carol.page.getByText("Name is required.").waitFor();
        await carol.page.getByLabel("Name").fill("Carol's studio");
        await carol.page.getByRole("button", { name: "Create team" }).click();
        const link = carol.page.getByRole("link", { name: "Settings of Carol's studio" });
        await link.waitFor();
        await carol.page.waitForFunction(() => document.activeElement?.textContent === "Settings of Carol's studio");
        await accessible("/settings/teams (team created)", carol.page);
        const studio = (await asClient(carol.token, "GET", "/teams")).body.data.find((t) => t.name === "Carol's studio");
        assert.equal(studio.role, "owner");
        const added = await asClient(carol.token, "POST", `/teams/${studio.id}/members`, { email: dan.email, role: "member" });
        assert.equal(added.status, 201, JSON.stringify(added.body));
        // Dan's key for his own team and Carol's: once he has left hers, his list says so
        // rather than showing her team's id.
        const plan = await fetch(`${product.base}/api/v1/teams/${dan.teamId}/plan`, {
          method: "PUT",
          headers: { "Content-Type": "application/json", "X-Operator-Token": OPERATOR_TOKEN },
          body: JSON.stringify({ plan: "pro" }),
        });
        assert.equal(plan.status, 200);
        const key = await asClient(dan.token, "POST", "/account/api-keys", { name: "Both teams", permissions: ["read"], teams: [dan.teamId, studio.id] });
        assert.equal(key.status, 201, JSON.stringify(key.body));

        // Dan, a plain member, reaches the team's page from his teams and leaves it.
        await dan.page.getByRole("link", { name: "Teams" }).click();
        await dan.page.getByRole("link", { name: "Settings of Carol's studio" }).click();
        await dan.page.getByText("Only the team's owners and admins manage its settings.").waitFor();
        assert.equal(await dan.page.getByRole("heading", { name: "Members" }).count(), 0);
        await accessible("/settings/teams/{id} (plain member)", dan.page);
        await dan.page.getByRole("button", { name: "Leave team" }).click();
        const leave = dan.page.getByRole("dialog", { name: "Leave Carol's studio?" });
        await leave.waitFor();
        assert.ok(await leave.evaluate((d) => d.contains(document.activeElement)), "focus is inside the dialog");
        await leave.getByRole("button", { name: "Leave" }).click();
        await dan.page.waitForURL(`${product.base}/settings/teams`);
        await dan.page.getByRole("status").filter({ hasText: "You left Carol's studio." }).waitFor();
        assert.equal(await dan.page.getByRole("heading", { name: "Teams", level: 1 }).evaluate((el) => el === document.activeElement), true);
        await dan.page.getByRole("table", { name: "Your teams" }).waitFor();
        assert.equal(await dan.page.getByRole("link", { name: "Settings of Carol's studio" }).count(), 0);
        const members = (await asClient(carol.token, "GET", `/teams/${studio.id}/members`)).body.data;
        assert.deepEqual(members.map((m) => m.email), [carol.email]);
        await dan.page.getByRole("link", { name: "API keys" }).click();
        const teamsCell = dan.page.getByRole("row", { name: /Both teams/ }).locator('td[data-label="Teams"]');
        await teamsCell.getByText("a team you left").waitFor();
        assert.ok(!(await teamsCell.textContent()).includes(studio.id), await teamsCell.textContent());

        // Carol, its last owner, is refused with the API's reason next to the button.
        await link.click();
        await carol.page.getByRole("heading", { name: "Members" }).waitFor();
        const button = carol.page.getByRole("button", { name: "Leave team" });
        await button.click();
        await carol.page.getByRole("dialog", { name: "Leave Carol's studio?" }).getByRole("button", { name: "Leave" }).click();
        const refusal = carol.page.locator("#leave-error");
        await refusal.getByText(/last owner/).waitFor();
        assert.equal(await refusal.getAttribute("role"), "alert");
        assert.ok(await button.evaluate((b) => b === document.activeElement), "focus is back on Leave team");
        assert.equal(new URL(carol.page.url()).pathname, `/settings/teams/${studio.id}`);
        await accessible("/settings/teams/{id} (last owner refused)", carol.page);
      } finally {
        await carol.context.close();
        await dan.context.close();
      }
    });

    test("without a paid team, existing keys offer Usage and Revoke but not Edit and Rotate", async () => {
      const erin = await someone("Erin");
      try {
        const plan = (name) =>
          fetch(`${product.base}/api/v1/teams/${erin.teamId}/plan`, {
            method: "PUT",
            headers: { "Content-Type": "application/json", "X-Operator-Token": OPERATOR_TOKEN },
            body: JSON.stringify({ plan: name }),
          });
        assert.equal((await plan("pro")).status, 200);
        const created = await asClient(erin.token, "POST", "/account/api-keys", { name: "Left over", permissions: "full", teams: "all" });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        assert.equal((await plan("free")).status, 200);
        await erin.page.getByRole("link", { name: "API keys" }).click();
        await erin.page.getByText("needs a paid plan").waitFor();
        const row = erin.page.getByRole("row", { name: /Left over/ });
        await row.getByRole("button", { name: "Usage" }).waitFor();
        assert.equal(await row.getByRole("button", { name: "Revoke" }).count(), 1);
        assert.equal(await row.getByRole("button", { name: "Edit" }).count(), 0);
        assert.equal(await row.getByRole("button", { name: "Rotate" }).count(), 0);
        await accessible("/settings/api-keys (free, with a key)", erin.page);
        await row.getByRole("button", { name: "Revoke" }).click();
        await erin.page.getByRole("dialog", { name: /Revoke/ }).getByRole("button", { name: "Revoke" }).click();
        await erin.page.getByRole("row", { name: /Left over/ }).getByText("revoked").waitFor();
      } finally {
        await erin.context.close();
      }
    });

    test("after a refused log-in the error is said and focus is on the Email field", async () => {
      const fresh = await browser.newContext();
      const other = await fresh.newPage();
      try {
        await other.goto(`${product.base}/login`);
        await other.getByLabel("Email").fill(email);
        await other.getByLabel("Password").fill("not the password at all");
        await other.getByRole("button", { name: "Log in" }).click();
        await other.getByRole("alert").filter({ hasText: /./ }).waitFor();
        await other.waitForFunction(() => document.activeElement?.id === "email");
        // The field's description carries the refusal, so that it is said with the field.
        const description = await other.getByLabel("Email").evaluate((input) =>
          input.getAttribute("aria-describedby").split(" ").map((id) => document.getElementById(id)?.textContent ?? "").join(" ").trim(),
        );
        assert.ok(description.length > 0, "the Email field is described by the refusal");
        await accessible("/login (refused)", other);
      } finally {
        await fresh.close();
      }
    });

    test("the OAuth sign-in and consent pages look like the console, pass the accessibility check and send the code back", async () => {
      // The app's callback: another origin than the console's (so the consent page's policy must
      // let its form lead there), yet on this machine (the product's own port, which answers 404).
      const port = new URL(product.base).port;
      const callback = `http://localhost:${port}/callback`;
      const registered = await fetch(`${product.base}/oauth/register`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ client_name: "Claude", redirect_uris: [callback] }),
      });
      assert.equal(registered.status, 201);
      const { client_id: clientId } = await registered.json();
      const query = new URLSearchParams({
        response_type: "code",
        client_id: clientId,
        redirect_uri: callback,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method: "S256",
        state: "xyz",
      });
      // A person signing in from the app: a browser without the console's session.
      const fresh = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      const oauthErrors = [];
      fresh.on("request", (request) => {
        const url = request.url();
        // The callback's origin answers with a page of its own (this product's 404 page here).
        if (!url.startsWith(product.base) && !url.startsWith(new URL(callback).origin)) foreignRequests.push(url);
      });
      const other = await fresh.newPage();
      other.on("console", (message) => {
        // As on the console's pages, a refused request is not a script error.
        if (message.type() === "error" && !/Failed to load resource/.test(message.text())) oauthErrors.push(message.text());
      });
      other.on("pageerror", (error) => oauthErrors.push(String(error)));
      try {
        const response = await other.goto(`${product.base}/oauth/authorize?${query}`);
        assert.match(response.headers()["content-security-policy"], /default-src 'self'; script-src 'self'/);
        await other.getByRole("heading", { name: "Sign in to connect Claude" }).waitFor();
        assert.equal(await other.locator("link[rel=stylesheet]").getAttribute("href"), await page.locator("link[rel=stylesheet]").getAttribute("href"));
        for (const width of [1440, 375]) {
          await other.setViewportSize({ width, height: 900 });
          await accessible(`OAuth sign-in at ${width}px`, other);
          await screenshot(`oauth-sign-in${width === 375 ? "-375" : ""}`, {}, other);
        }
        await other.setViewportSize({ width: 1440, height: 900 });
        await other.getByLabel("Email").fill(email);
        await other.getByLabel("Password").fill(PASSWORD);
        await other.getByRole("button", { name: "Sign in" }).click();
        await other.getByRole("heading", { name: "Connect Claude to Zenovay" }).waitFor();
        await other.getByLabel("Team").waitFor();
        await other.getByRole("group", { name: "What it may do" }).waitFor();
        for (const width of [1440, 375]) {
          await other.setViewportSize({ width, height: 900 });
          await accessible(`OAuth consent at ${width}px`, other);
          await screenshot(`oauth-consent${width === 375 ? "-375" : ""}`, {}, other);
        }
        await other.getByRole("button", { name: "Allow" }).click();
        await other.waitForURL(`${callback}**`);
        const back = new URL(other.url());
        assert.equal(back.searchParams.get("state"), "xyz");
        assert.ok(back.searchParams.get("code"), "the code goes back to the app");
        assert.deepEqual(oauthErrors, []);
      } finally {
        await fresh.close();
      }
    });

    test("the log-in and sign-up pages, at 375 and at 1440 px wide, have no sideways scroll and no serious accessibility violation", async () => {
      // Someone without a session: a browser of their own.
      const fresh = await browser.newContext();
      fresh.on("request", (request) => {
        if (!request.url().startsWith(product.base)) foreignRequests.push(request.url());
      });
      const other = await fresh.newPage();
      try {
        for (const width of [375, 1440]) {
          await other.setViewportSize({ width, height: 800 });
          for (const [where, heading] of [["/login", "Log in"], ["/signup", "Sign up"]]) {
            await other.goto(`${product.base}${where}`);
            await other.getByRole("heading", { name: heading, level: 1 }).waitFor();
            const overflow = await other.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
            assert.ok(overflow <= 0, `${where} at ${width}px scrolls sideways by ${overflow}px`);
            await accessible(`${where} at ${width}px`, other);
          }
        }
      } finally {
        await fresh.close();
      }
    });

    test("every page, at 375 and at 1440 px wide, has no sideways scroll and no serious accessibility violation", async () => {
      const [team] = await teamsOfMe();
      const pages = [
        ["websites", "/websites", "Websites"],
        ["website", `/websites/${shop.id}`, "Ada's shop · statistics"],
        ["api-keys", "/settings/api-keys", "API keys"],
        ["teams", "/settings/teams", "Teams"],
        ["team-settings", `/settings/teams/${team.id}`, /^Team settings/],
        ["connected-apps", "/settings/connected-apps", "Connected apps"],
        ["password", "/settings/password", "Password and sessions"],
      ];
      for (const width of [375, 1440]) {
        await page.setViewportSize({ width, height: width === 375 ? 800 : 900 });
        for (const [name, where, heading] of pages) {
          await page.goto(`${product.base}${where}`);
          await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
          await page.locator("#app:not([aria-busy])").waitFor();
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          assert.ok(overflow <= 0, `${where} at ${width}px scrolls sideways by ${overflow}px`);
          await accessible(`${where} at ${width}px`);
          if (width === 375) await screenshot(`${name}-375`);
          else if (name === "teams") await screenshot(name);
        }
      }
    });

    test("a website whose domain and name are each one long word fits its pages at 375 and at 1440 px", async () => {
      // The longest domain the API takes (253 characters, labels of up to 63) and the longest name.
      const domain = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(57)}.com`;
      const name = "W".repeat(100);
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.goto(`${product.base}/websites`);
      await addWebsite({ domain, name });
      const id = (await (await page.request.get(`${product.base}/api/v1/websites`)).json()).data.find((w) => w.domain === domain).id;
      try {
        for (const width of [375, 1440]) {
          await page.setViewportSize({ width, height: 900 });
          for (const where of ["/websites", `/websites/${id}`]) {
            if (where === "/websites") {
              // The website is on the page its place in the list puts it.
              await page.goto(`${product.base}/websites`);
              await page.locator("#app:not([aria-busy])").waitFor();
              const pager = page.getByRole("navigation", { name: "Website pages" });
              while (!(await page.getByRole("heading", { name, level: 3 }).isVisible())) await pager.getByRole("button", { name: "Next" }).click();
            } else {
              await page.goto(`${product.base}${where}`);
              await page.getByRole("heading", { name: `${name} · statistics`, level: 1 }).waitFor();
              await page.locator("#app:not([aria-busy])").waitFor();
            }
            const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
            assert.ok(overflow <= 0, `${where} at ${width}px scrolls sideways by ${overflow}px`);
          }
        }
      } finally {
        await page.setViewportSize({ width: 1440, height: 900 });
        await dashboard("DELETE", `/websites/${id}`);
      }
    });

    test("log out ends the session", async () => {
      await page.getByRole("button", { name: "Log out" }).click();
      await page.waitForURL(`${product.base}/login`);
      await page.goto(`${product.base}/websites`);
      assert.equal(new URL(page.url()).pathname, "/login");
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Log in" }).click();
      await page.waitForURL(`${product.base}/websites`);
    });

    test("a page asked for without a session is shown once logged in, and an address with no page says so", async () => {
      await page.getByRole("button", { name: "Log out" }).click();
      await page.waitForURL(`${product.base}/login`);
      await page.goto(`${product.base}/settings/teams`);
      // Signing up instead would lead there too.
      const signUp = await page.getByRole("link", { name: "Sign up" }).getAttribute("href");
      assert.equal(signUp, `/signup?next=${encodeURIComponent("/settings/teams")}`);
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Log in" }).click();
      await page.waitForURL(`${product.base}/settings/teams`);
      // A `next` that would lead elsewhere, once the browser drops a tab from it, leads to the websites.
      await page.getByRole("button", { name: "Log out" }).click();
      await page.waitForURL(`${product.base}/login`);
      await page.goto(`${product.base}/login?next=${encodeURIComponent("/\t/elsewhere.example/x")}`);
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Log in" }).click();
      await page.waitForURL(`${product.base}/websites`);
      const missing = await page.goto(`${product.base}/setings`);
      assert.equal(missing.status(), 404);
      await page.getByRole("heading", { name: "Page not found" }).waitFor();
      assert.equal(await page.title(), "Page not found · Zenovay");
      await page.getByRole("link", { name: "Go to the console" }).click();
      await page.waitForURL(`${product.base}/websites`);
    });

    test("every request went to the product's own origin, with no script error or CSP violation", () => {
      assert.deepEqual(foreignRequests, []);
      assert.deepEqual(pageErrors, []);
    });
  });
}
