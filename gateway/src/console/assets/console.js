// The console's one script. Each page is an HTML shell from the gateway; this fills it from the
// dashboard API (/api/v1) with the session cookie and the page's CSRF token. DOM is built with
// textContent only (no innerHTML), so nothing the API returns is ever parsed as HTML.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const page = document.body.dataset.page;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  return (await envelope(method, path, body)).data;
}

/** The API's whole answer, for a paged list's `pagination` beside its `data`. */
async function envelope(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let json = null;
  try {
    json = await response.json();
  } catch {
    // An answer without a JSON body is reported by its status below.
  }
  if (response.status === 401 && csrf) {
    // The session ended (logged out elsewhere, expired): start again.
    location.assign("/login");
  }
  if (!response.ok || !json?.success) {
    const error = json?.error ?? {};
    throw new ApiError(response.status, error.code, error.message ?? `The server answered ${response.status}.`);
  }
  return json;
}

/** An element with attributes (`on…` are listeners) and children (nodes or text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else if (name === "checked" || name === "disabled" || name === "selected") el[name] = true;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** `YYYY-MM-DD` of a time in the browser's time zone, as a date input takes it. */
function localDate(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function when(iso) {
  if (!iso) return "Never";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** A cell that names its column on narrow screens (see `table.stack` in the stylesheet). */
function td(label, ...children) {
  return h("td", { "data-label": label }, ...children);
}

// A wide table scrolls on its own, and a keyboard user reaches it to scroll it; one with nothing
// to scroll would only be a tab stop too many. Checked whenever its size changes.
const scrolling = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    if (target.scrollWidth > target.clientWidth) target.setAttribute("tabindex", "0");
    else target.removeAttribute("tabindex");
  }
});

/** A table; `stack` (the default) turns its rows into blocks on a phone, for wide tables. */
function table(caption, columns, rows, { stack = true } = {}) {
  const wrap = h(
    "div",
    { class: "table-wrap", role: "region", "aria-label": caption },
    h(
      "table",
      { class: stack ? "stack" : "narrow-table" },
      h("caption", { class: "muted", text: caption }),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, rows),
    ),
  );
  scrolling.observe(wrap);
  return wrap;
}

const PAGE_SIZE = 20;

/**
 * Shows `content` as page `n` of `pages` in `box`, with "Previous" and "Next" when there is more
 * than one page; `turn(to, pressed)` shows another. Paging keeps focus on the button pressed (or
 * on the other one once it is disabled).
 */
function showPage(box, { content, n, pages, label, turn, pressed }) {
  const prev = h("button", { type: "button", disabled: n === 0, onclick: () => turn(n - 1, "prev"), text: "Previous" });
  const next = h("button", { type: "button", disabled: n + 1 >= pages, onclick: () => turn(n + 1, "next"), text: "Next" });
  const where = h("span", { role: "status", text: `Page ${n + 1} of ${pages}` });
  const pager = pages > 1 ? h("nav", { class: "pager", "aria-label": label }, prev, where, next) : "";
  box.replaceChildren(...[content].flat(), pager);
  if (pressed) {
    const [same, other] = pressed === "prev" ? [prev, next] : [next, prev];
    (same.disabled ? other : same).focus();
  }
}

/** `items` a page at a time, drawn by `render`; `start` is the index of an item whose page to show first. */
function paged({ items, label, render, size = PAGE_SIZE, start = 0 }) {
  const box = h("div", { class: "paged" });
  const pages = Math.max(1, Math.ceil(items.length / size));
  const draw = (n, pressed) => showPage(box, { content: render(items.slice(n * size, (n + 1) * size)), n, pages, label, turn: draw, pressed });
  draw(Math.min(Math.floor(Math.max(start, 0) / size), pages - 1));
  return box;
}

/**
 * A list the server pages: each page is asked for when shown (`load(page, size)` gives its
 * items and the total), so that every entry can be reached however long the list grows.
 */
async function serverPaged({ label, load, render, size = PAGE_SIZE }) {
  const box = h("div", { class: "paged" });
  // Presses quicker than the answers step on from the page last asked for, not the one shown,
  // and only the last one asked for is drawn, whatever order the answers come in.
  let asked = 0;
  let shown = 0;
  let latest = 0;
  const draw = async (n, pressed) => {
    asked = n;
    const mine = ++latest;
    let items, total;
    try {
      ({ items, total } = await load(n + 1, size));
    } catch (error) {
      if (mine !== latest) return;
      // The next press steps from the page on screen.
      asked = shown;
      throw error;
    }
    if (mine !== latest) return;
    shown = n;
    const pages = Math.max(1, Math.ceil(total / size));
    const turn = (to, which) => {
      const next = Math.min(Math.max(asked + to - n, 0), pages - 1);
      if (next !== asked) draw(next, which).catch(alertError);
    };
    showPage(box, { content: render(items), n, pages, label, turn, pressed });
  };
  await draw(0);
  return box;
}

function pagedTable({ caption, columns, rows, label, size, start }) {
  return paged({ items: rows, label, size, start, render: (slice) => table(caption, columns, slice) });
}

/** A labelled control with the place its error appears. */
function field(label, id, control) {
  control.id = id;
  control.setAttribute("aria-describedby", `${id}-error`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id, text: label }),
    control,
    h("p", { class: "error", id: `${id}-error`, role: "alert", hidden: true }),
  );
}

function choice(type, name, value, label, id, extra = {}) {
  const input = h("input", { type, name, value, id, ...extra });
  const row = h("div", { class: "choice" }, input, h("label", { for: id, text: label }));
  return { input, row };
}

/** Clears the errors a form shows. */
function clearErrors(form) {
  for (const p of form.querySelectorAll(".error")) {
    p.hidden = true;
    p.textContent = "";
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/**
 * Shows an API error next to the field it names: messages start with the field's name
 * (`name: must be …`, `domain must be …`). `fields` maps API field names to control ids, and
 * may map an error code to the control it is about (`CONFLICT: "email"` on sign-up).
 */
/** A fieldset's first choice still open, in its sub-list (the scopes, the teams) first. */
function firstChoice(fieldset) {
  return fieldset.querySelector(".sub input:not(:disabled)") ?? fieldset.querySelector("input:not(:disabled)");
}

function showError(form, error, fields) {
  const match = /^([a-z_]+)/i.exec(error.message ?? "");
  const byName = match && fields[match[1]];
  const id = byName || fields[error.code];
  const slot = id && form.querySelector(`#${id}-error`);
  if (slot) {
    const control = form.querySelector(`#${id}`);
    // Said with the control's own label ("Expires: …"), not the API's name of the field, whether
    // the API put a colon after the name ("domain: must be …") or not ("domain must be …").
    const label = control?.tagName === "FIELDSET" ? control.querySelector("legend")?.textContent : form.querySelector(`label[for="${id}"]`)?.textContent;
    const named = byName ? /^[a-z_]+(\[\d+\])?(\.[a-z_]+)*:? /i : /^[a-z_]+(\[\d+\])?(\.[a-z_]+)*: /i;
    // A message the API does not start with a field's name ("a website with domain … already
    // exists") is said after the label all the same.
    if (!label) slot.textContent = error.message;
    else if (named.test(error.message)) slot.textContent = error.message.replace(named, `${label.trim()}: `);
    else slot.textContent = `${label.trim()}: ${error.message}`;
    slot.hidden = false;
    if (control && control.tagName !== "FIELDSET") control.setAttribute("aria-invalid", "true");
    const fieldset = control?.tagName === "FIELDSET";
    (fieldset ? firstChoice(control) : control)?.focus();
    return;
  }
  const general = form.querySelector(".form-error");
  general.textContent = error.message;
  general.hidden = false;
  general.focus?.();
}

/**
 * Marks every empty control of `required` (control ids and their labels) at once, next to each,
 * and focuses the first: the server names one wrong field at a time. Whether any was empty.
 */
function missing(form, required) {
  const empty = required.filter(([id]) => !form.querySelector(`#${id}`).value.trim());
  for (const [id, label] of empty) {
    const slot = form.querySelector(`#${id}-error`);
    slot.textContent = `${label} is required.`;
    slot.hidden = false;
    form.querySelector(`#${id}`).setAttribute("aria-invalid", "true");
  }
  if (empty.length) form.querySelector(`#${empty[0][0]}`).focus();
  return empty.length > 0;
}

/** A modal dialog: focus moves into it, and back to where it was when it closes. */
function openDialog(dialog) {
  const back = document.activeElement;
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (back && back.isConnected) back.focus();
  });
  dialog.showModal();
  return dialog;
}

function confirmDialog({ title, text, confirm }) {
  return new Promise((resolve) => {
    let confirmed = false;
    const dialog = h(
      "dialog",
      { "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title", text: title }),
      h("p", { id: "confirm-text", text }),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", autofocus: true, onclick: () => dialog.close(), text: "Cancel" }),
        h("button", { type: "button", class: "danger", onclick: () => ((confirmed = true), dialog.close()), text: confirm }),
      ),
    );
    dialog.addEventListener("close", () => resolve(confirmed));
    openDialog(dialog);
  });
}

async function copy(text, status) {
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied.";
  } catch {
    status.textContent = "Copying is blocked here: select the text and copy it yourself.";
  }
}

// One request per form at a time: a second Enter or a double click while the first is on its way
// would make a second key, team or website. The form says it is busy; its button is left enabled,
// keeping the focus a disabled one would lose.
function whenSubmitted(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    form.setAttribute("aria-busy", "true");
    try {
      await handler(event);
    } finally {
      form.removeAttribute("aria-busy");
    }
  });
}

/** A name for a tab's title, which is plain text where no element can isolate it: without its direction marks. */
function plainTitle(name) {
  return name.replace(/[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "");
}

/** Says `text` in a status line right after `element` (a heading that has the focus). */
function announceAfter(element, text) {
  if (!element) return;
  // A live region is said when its text changes, not when it arrives with it.
  const said = h("p", { role: "status" });
  element.after(said);
  requestAnimationFrame(() => (said.textContent = text));
}

/** Whether the focus is nowhere a reader could be: on no control, or on one now hidden. */
function focusLost() {
  const active = document.activeElement;
  return !active || active === document.body || Boolean(active.closest("[hidden]"));
}

/** Marks `#app` as ready and puts `content` in it. */
function show(...content) {
  const app = document.getElementById("app");
  app.replaceChildren(...content);
  app.removeAttribute("aria-busy");
}

function failed(error) {
  show(
    h("p", { class: "error", role: "alert", text: `Could not load this page: ${error.message}` }),
    h("p", {}, h("a", { href: "/websites", text: "Go to your websites" })),
  );
}

// Sign up, log in, log out.

function authPage() {
  const form = document.getElementById("auth-form");
  // Switching between logging in and signing up keeps where either leads.
  const next = new URLSearchParams(location.search).get("next");
  for (const link of document.querySelectorAll('main a[href="/signup"], main a[href="/login"]')) {
    if (next) link.href = `${link.getAttribute("href")}?${new URLSearchParams({ next })}`;
  }
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    const required = [["name", "Name"], ["email", "Email"], ["password", "Password"]].filter(([id]) => form.querySelector(`#${id}`));
    if (missing(form, required)) return;
    const data = Object.fromEntries(new FormData(form));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", form.dataset.action.replace("/api/v1", ""), data);
      location.assign(nextPage());
    } catch (error) {
      showError(form, error, { email: "email", password: "password", name: "name", CONFLICT: "email" });
      button.disabled = false;
      // A refusal that names no field (a wrong email or password, too many attempts) is said
      // above the button, which was disabled with the focus on it: focus goes back to Email,
      // which that message describes, rather than being left on the page's body.
      if (!form.querySelector(".form-error").hidden) form.querySelector("#email").focus();
    }
  });
}

/**
 * Where logging in leads: the page asked for before (`?next=`), resolved as the browser will
 * resolve it (which drops tabs and line breaks, `/\t/elsewhere` being `//elsewhere`) and kept only
 * on this origin; else the websites.
 */
function nextPage() {
  const next = new URLSearchParams(location.search).get("next");
  const url = next ? new URL(next, location.origin) : null;
  return url?.origin === location.origin ? `${url.pathname}${url.search}${url.hash}` : "/websites";
}

function logoutButton() {
  document.getElementById("logout")?.addEventListener("click", async () => {
    try {
      await api("POST", "/auth/logout");
    } finally {
      location.assign("/login");
    }
  });
}

// Websites.

function snippet(website) {
  const origin = location.origin;
  return `<script defer data-domain="${website.domain}" data-api="${origin}/api/event" src="${origin}/js/script.js"></script>`;
}

/**
 * Zones the browser's ICU still lists by a name the IANA database has since replaced, under
 * their current names (both name the same zone to the product): a person looks for Kolkata or
 * Kyiv, not Calcutta or Kiev.
 */
const CURRENT_ZONE_NAMES = {
  "Africa/Asmera": "Africa/Asmara",
  "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
  "America/Catamarca": "America/Argentina/Catamarca",
  "America/Coral_Harbour": "America/Atikokan",
  "America/Cordoba": "America/Argentina/Cordoba",
  "America/Godthab": "America/Nuuk",
  "America/Indianapolis": "America/Indiana/Indianapolis",
  "America/Jujuy": "America/Argentina/Jujuy",
  "America/Louisville": "America/Kentucky/Louisville",
  "America/Mendoza": "America/Argentina/Mendoza",
  "Asia/Calcutta": "Asia/Kolkata",
  "Asia/Katmandu": "Asia/Kathmandu",
  "Asia/Rangoon": "Asia/Yangon",
  "Asia/Saigon": "Asia/Ho_Chi_Minh",
  "Atlantic/Faeroe": "Atlantic/Faroe",
  "Europe/Kiev": "Europe/Kyiv",
  "Pacific/Enderbury": "Pacific/Kanton",
  "Pacific/Ponape": "Pacific/Pohnpei",
  "Pacific/Truk": "Pacific/Chuuk",
};

function currentZoneName(zone) {
  return CURRENT_ZONE_NAMES[zone] ?? zone;
}

function timezones() {
  const listed = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const zones = [...new Set(listed.map(currentZoneName))].sort();
  return zones.includes("UTC") ? zones : ["UTC", ...zones];
}

async function websitesPage(focusId) {
  const [teams, websites] = await Promise.all([api("GET", "/teams"), api("GET", "/websites")]);
  const teamName = new Map(teams.map((t) => [t.id, t.name]));
  const list = h("section", { "aria-labelledby": "list-title", class: "card" }, h("h2", { id: "list-title", tabindex: "-1", text: "Your websites" }));
  if (websites.length === 0) {
    list.append(
      h("p", { class: "notice" }, "No websites yet. Add your first one with the form, then paste its tracking snippet into the ", h("code", { text: "<head>" }), " of your pages."),
    );
  }
  const card = (website) => {
    const code = snippet(website);
    const status = h("span", { class: "muted", role: "status" });
    const snippetId = `snippet-${website.id}`;
    return h(
      "article",
      { class: "card", "aria-labelledby": `site-${website.id}` },
      h("h3", { id: `site-${website.id}`, tabindex: "-1", text: website.name }),
      h("p", { class: "muted", text: `${website.domain} · ${teamName.get(website.team_id) ?? "team"} · ${website.timezone}` }),
      h("p", { id: `${snippetId}-label`, text: "Tracking snippet: put it in the <head> of every page." }),
      h("pre", { id: snippetId, "aria-labelledby": `${snippetId}-label`, tabindex: "0" }, h("code", { text: code })),
      h("div", { class: "actions" }, h("button", { type: "button", "aria-describedby": `${snippetId}-label`, onclick: () => copy(code, status), text: "Copy" }), status),
      h("p", {}, h("a", { href: `/websites/${encodeURIComponent(website.id)}`, text: `Statistics of ${website.name}` })),
      // Each card is named by its website; the buttons are described by that name too, for
      // someone who reaches them by moving from button to button.
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", "aria-describedby": `site-${website.id}`, onclick: () => editWebsite(website), text: "Edit" }),
        h("button", { type: "button", class: "danger", "aria-describedby": `site-${website.id}`, onclick: () => deleteWebsite(website), text: "Delete" }),
      ),
    );
  };
  if (websites.length > 0) {
    const start = websites.findIndex((w) => `site-${w.id}` === focusId);
    list.append(paged({ items: websites, label: "Website pages", size: 10, start, render: (slice) => slice.map(card) }));
  }

  const team = h("select", { name: "team_id" }, teams.map((t) => h("option", { value: t.id, text: t.name })));
  const zone = h("select", { name: "timezone" });
  const local = currentZoneName(Intl.DateTimeFormat().resolvedOptions().timeZone);
  for (const z of timezones()) zone.append(h("option", { value: z, selected: z === local, text: z }));
  const form = h(
    "form",
    { novalidate: true },
    field("Team", "site-team", team),
    field("Domain", "site-domain", h("input", { name: "domain", placeholder: "example.com", autocomplete: "off", required: true })),
    field("Name", "site-name", h("input", { name: "name", placeholder: "My blog", required: true, maxlength: "100" })),
    field("Timezone", "site-timezone", zone),
    h("p", { class: "error form-error", role: "alert", hidden: true }),
    h("button", { type: "submit", class: "primary", text: "Add website" }),
  );
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (missing(form, [["site-domain", "Domain"], ["site-name", "Name"]])) return;
    try {
      const website = await api("POST", "/websites", Object.fromEntries(new FormData(form)));
      await websitesPage(`site-${website.id}`);
      document.getElementById(`site-${website.id}`)?.focus();
    } catch (error) {
      showError(form, error, { team_id: "site-team", domain: "site-domain", name: "site-name", timezone: "site-timezone", CONFLICT: "site-domain" });
    }
  });
  const add = h("section", { "aria-labelledby": "add-title", class: "card" }, h("h2", { id: "add-title", text: "Add a website" }), form);
  show(h("div", { class: "grid two" }, list, add));
}

/** "Edit": the website's name and time zone in a dialog, saved with "Save". */
function editWebsite(website) {
  const name = h("input", { name: "name", required: true, maxlength: "100", autocomplete: "off", value: website.name });
  const zones = timezones();
  // A zone this browser does not list (an older alias set through the API) stays choosable.
  if (!zones.includes(website.timezone)) zones.unshift(website.timezone);
  const zone = h("select", { name: "timezone" }, zones.map((z) => h("option", { value: z, selected: z === website.timezone, text: z })));
  const dialog = h("dialog", { "aria-labelledby": "site-edit-title" }, h("h2", { id: "site-edit-title", text: `Edit “${website.name}”` }));
  const form = h(
    "form",
    { novalidate: true },
    field("Name", "edit-site-name", name),
    field("Timezone", "edit-site-timezone", zone),
    h("p", { class: "error form-error", role: "alert", tabindex: "-1", hidden: true }),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary", text: "Save" }),
      h("button", { type: "button", onclick: () => dialog.close(), text: "Cancel" }),
    ),
  );
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (missing(form, [["edit-site-name", "Name"]])) return;
    try {
      await api("PATCH", `/websites/${encodeURIComponent(website.id)}`, { name: name.value, timezone: zone.value });
      dialog.close();
      // The list is drawn anew, the button pressed with it: focus goes to the website's name.
      await websitesPage(`site-${website.id}`);
      document.getElementById(`site-${website.id}`)?.focus();
    } catch (error) {
      showError(form, error, { name: "edit-site-name", timezone: "edit-site-timezone" });
    }
  });
  dialog.append(form);
  openDialog(dialog);
}

/** "Delete", after a confirmation: the website goes with its data, and the list is shown again. */
async function deleteWebsite(website) {
  const sure = await confirmDialog({
    title: `Delete “${website.name}”?`,
    text: `${website.domain} and all its statistics, goals and events are deleted at once. This cannot be undone.`,
    confirm: "Delete",
  });
  if (!sure) return;
  try {
    await api("DELETE", `/websites/${encodeURIComponent(website.id)}`);
    await websitesPage();
    document.getElementById("list-title")?.focus();
  } catch (error) {
    alertError(error);
  }
}

// API keys.

const paid = (team) => team.plan !== "free";

/** Why the key policy of `team` keeps me from using keys on it, or null. */
function policyReason(team) {
  if (team.api_key_policy === "nobody") return "Its key policy allows no one to use API keys.";
  if (team.api_key_policy === "admins_only" && team.role === "member") return "Its key policy allows owners and admins only.";
  return null;
}

/** Whether I may use keys on `team`: it is on a paid plan and its key policy lets me. */
const keysAllowed = (team) => paid(team) && !policyReason(team);

function permissionsText(permissions) {
  if (permissions === "full") return "Full access";
  return permissions.map((p) => p[0].toUpperCase() + p.slice(1)).join(", ");
}

function teamsText(keyTeams, teamName) {
  if (keyTeams === "all") return "All teams";
  // A team the key names but I no longer belong to: its name is no longer mine to see.
  return keyTeams.map((id) => teamName.get(id) ?? "a team you left").join(", ");
}

/**
 * Why a key was revoked: the API's `revoked_reason` as words (`team access lost`), but a key
 * revoked by its owner, which the API names `user`.
 */
const REVOKED_REASONS = { user: "by you" };

function keyStatus(key) {
  if (key.revoked_at) return "revoked";
  return key.status ?? "active";
}

/**
 * The create and edit form: name, permissions ("Full access" or "Select" with Read, Write,
 * Admin) and team access ("All teams" or "Selected teams"), with what is unavailable disabled
 * and the reason said next to it.
 */
function keyForm({ prefix, teams, key, submit, onSubmit }) {
  const name = h("input", { name: "name", required: true, maxlength: "64", autocomplete: "off", value: key?.name ?? "" });
  // The last day the key works, in the browser's time zone; empty: it never expires.
  const expires = h("input", {
    type: "date",
    name: "expires",
    value: key?.expires_at ? localDate(key.expires_at) : "",
    // No min: an expired key's form must still save its other fields.
    max: localDate(Date.now() + 366 * 86400e3),
  });
  const expiresBefore = expires.value;
  // One address or CIDR block per line (or separated by commas); empty: anywhere.
  const ips = h("textarea", { name: "allowed_ips", rows: "2", placeholder: "203.0.113.0/24", text: (key?.allowed_ips ?? []).join("\n") });
  const full = choice("radio", `${prefix}perm`, "full", "Full access", `${prefix}perm-full`, { checked: !key || key.permissions === "full" });
  const select = choice("radio", `${prefix}perm`, "select", "Select", `${prefix}perm-select`, { checked: key && key.permissions !== "full" });
  const scopes = ["read", "write", "admin"].map((scope) =>
    choice("checkbox", `${prefix}scope`, scope, scope[0].toUpperCase() + scope.slice(1), `${prefix}scope-${scope}`, {
      checked: Array.isArray(key?.permissions) && key.permissions.includes(scope),
    }),
  );
  const adminReason = h("span", { class: "reason", id: `${prefix}admin-reason` });
  scopes[2].input.setAttribute("aria-describedby", adminReason.id);
  scopes[2].row.append(adminReason);
  const permissions = h(
    "fieldset",
    { id: `${prefix}permissions`, "aria-describedby": `${prefix}permissions-error` },
    h("legend", { text: "Permissions" }),
    full.row,
    select.row,
    h("div", { class: "sub" }, scopes.map((s) => s.row)),
    h("p", { class: "error", id: `${prefix}permissions-error`, role: "alert", hidden: true }),
  );

  const all = choice("radio", `${prefix}teams`, "all", "All teams", `${prefix}teams-all`, { checked: !key || key.teams === "all" });
  const some = choice("radio", `${prefix}teams`, "some", "Selected teams", `${prefix}teams-some`, { checked: key && key.teams !== "all" });
  const teamBoxes = teams.map((team) => {
    const reason = policyReason(team);
    const box = choice("checkbox", `${prefix}team`, team.id, `${team.name} (${team.plan}, ${team.role})`, `${prefix}team-${team.id}`, {
      checked: Array.isArray(key?.teams) && key.teams.includes(team.id),
    });
    box.blocked = reason;
    box.team = team;
    // A Free team may be chosen beside a paid one, which the key needs.
    const note = reason ? `Unavailable: ${reason}` : paid(team) ? "" : "On the Free plan: a key needs a paid team besides it.";
    if (note) {
      const id = `${prefix}team-${team.id}-reason`;
      box.row.append(h("span", { class: "reason", id, text: note }));
      box.input.setAttribute("aria-describedby", id);
    }
    return box;
  });
  const teamAccess = h(
    "fieldset",
    { id: `${prefix}teams`, "aria-describedby": `${prefix}teams-error` },
    h("legend", { text: "Team access" }),
    all.row,
    some.row,
    h("div", { class: "sub" }, teamBoxes.map((b) => b.row)),
    h("p", { class: "error", id: `${prefix}teams-error`, role: "alert", hidden: true }),
  );

  // Admin counts only on teams where I am owner or admin: it is unavailable when a selected
  // team (or, with all teams, every team) has me as a plain member.
  function refresh() {
    for (const s of scopes) s.input.disabled = !select.input.checked;
    for (const b of teamBoxes) {
      b.input.disabled = !some.input.checked || Boolean(b.blocked);
      if (b.blocked) b.input.checked = false;
    }
    const chosen = some.input.checked ? teamBoxes.filter((b) => b.input.checked).map((b) => b.team) : teams;
    const plain = chosen.filter((t) => t.role === "member");
    let reason = "";
    if (some.input.checked && plain.length > 0) reason = `Unavailable: you are a plain member of ${plain.map((t) => t.name).join(", ")}.`;
    else if (!some.input.checked && teams.every((t) => t.role === "member")) reason = "Unavailable: you are a plain member of every team.";
    adminReason.textContent = reason;
    if (reason) {
      scopes[2].input.checked = false;
      scopes[2].input.disabled = true;
    }
  }

  const form = h(
    "form",
    { novalidate: true },
    field("Name", `${prefix}name`, name),
    permissions,
    teamAccess,
    field("Expires", `${prefix}expires`, expires),
    field("Allowed IP addresses", `${prefix}ips`, ips),
    h("p", { class: "error form-error", role: "alert", tabindex: "-1", hidden: true }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: submit })),
  );
  form.addEventListener("change", refresh);
  refresh();
  /** Says `message` under `fieldset` and focuses its first choice still open, in its sub-list first. */
  const refuse = (fieldset, message) => {
    const slot = form.querySelector(`#${fieldset.id}-error`);
    slot.textContent = message;
    slot.hidden = false;
    firstChoice(fieldset)?.focus();
  };
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {
      name: name.value,
      permissions: full.input.checked ? "full" : scopes.filter((s) => s.input.checked).map((s) => s.input.value),
      teams: all.input.checked ? "all" : teamBoxes.filter((b) => b.input.checked).map((b) => b.input.value),
    };
    // Said in the form's words before asking: the server's would name its JSON values.
    if (body.permissions.length === 0) return refuse(permissions, "Permissions: choose at least one of Read, Write and Admin.");
    if (body.teams.length === 0) return refuse(teamAccess, "Team access: choose at least one team.");
    const reached = all.input.checked ? teams : teamBoxes.filter((b) => b.input.checked).map((b) => b.team);
    if (!key?.revoked_at && !reached.some(keysAllowed)) {
      const why = teams.some(keysAllowed)
        ? "Team access: a key must reach at least one team on a paid plan whose key policy lets you use keys."
        : "Team access: none of your teams lets you use keys now: the API needs a paid plan, and the key policy of each of your paid teams keeps you from using keys on it.";
      return refuse(teamAccess, why);
    }
    body.allowed_ips = ips.value.split(/[\s,]+/).filter(Boolean);
    // Through the end of the chosen day. An edit sends it only when changed (emptied: never), so
    // that an expiry set to the minute through the API is kept.
    if (!key || expires.value !== expiresBefore) {
      // The end of the 366th day ahead lies past the 366 days a key may live: chosen through
      // that day, a key lives the 366 days (less a minute for the request's way to the server).
      // A later day is sent as chosen, for the server to refuse.
      const latest = Date.now() + 366 * 86400e3 - 60e3;
      const end = new Date(`${expires.value}T23:59:59`).getTime();
      if (expires.value) body.expires_at = new Date(end > latest && end - latest < 86400e3 + 60e3 ? latest : end).toISOString();
      else if (key) body.expires_at = null;
    }
    try {
      await onSubmit(body);
    } catch (error) {
      showError(form, error, {
        name: `${prefix}name`,
        permissions: `${prefix}permissions`,
        teams: `${prefix}teams`,
        expires_at: `${prefix}expires`,
        allowed_ips: `${prefix}ips`,
      });
    }
  });
  return form;
}

/** The new secret, once: a dialog with Copy; dismissing it removes the secret from the page. */
function secretDialog(secret, onDone) {
  const status = h("p", { class: "muted", role: "status" });
  const dialog = h(
    "dialog",
    { "aria-labelledby": "secret-title", "aria-describedby": "secret-warning" },
    h("h2", { id: "secret-title", text: "Your new API key" }),
    h("p", { id: "secret-warning", class: "warning", text: "Copy it now: it will not be shown again." }),
    h("code", { class: "secret", id: "secret-value", "aria-label": "API key secret", text: secret }),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "primary", autofocus: true, onclick: () => copy(secret, status), text: "Copy" }),
      h("button", { type: "button", onclick: () => forget(), text: "Done" }),
    ),
    status,
  );
  // The secret leaves the page the moment the dialog is dismissed, not a task later when it closes.
  const forget = () => {
    dialog.querySelector("#secret-value").textContent = "";
    dialog.close();
  };
  dialog.addEventListener("cancel", () => (dialog.querySelector("#secret-value").textContent = ""));
  dialog.addEventListener("close", onDone);
  openDialog(dialog);
}

async function apiKeysPage(focusId) {
  const [teams, keys] = await Promise.all([api("GET", "/teams"), api("GET", "/account/api-keys")]);
  const teamName = new Map(teams.map((t) => [t.id, t.name]));
  // Without a paid team the API refuses an edit or a rotation (403), as it refuses a new key:
  // only what still works is offered (the usage, revoking).
  const anyPaid = teams.some(paid);
  const list = h("section", { "aria-labelledby": "keys-title", class: "card" }, h("h2", { id: "keys-title", tabindex: "-1", text: "Your keys" }));
  if (keys.length === 0) {
    list.append(h("p", { class: "notice", text: "No API keys yet. Create one to call the external API from your own code." }));
  } else {
    const rows = keys.map((key) => {
      const status = keyStatus(key);
      const live = status !== "revoked";
      // A row's buttons are described by its key's name and hint, which tell the rows apart.
      const named = `key-${key.id}-name key-${key.id}-hint`;
      const action = (text, onclick, attrs = {}) => h("button", { type: "button", onclick, text, "aria-describedby": named, ...attrs });
      const actions = live
        ? h(
            "div",
            { class: "actions" },
            anyPaid ? action("Edit", () => editKey(key, teams)) : "",
            action("Usage", () => keyUsage(key)),
            !anyPaid || key.rotated_to ? "" : action("Rotate", () => rotateKey(key)),
            action("Revoke", () => revokeKey(key), { class: "danger" }),
          )
        : // A revoked key's use stays worth reading (a leaked key's, above all).
          h("div", { class: "actions" }, action("Usage", () => keyUsage(key)));
      return h(
        "tr",
        { id: `key-${key.id}`, tabindex: "-1" },
        h("td", { "data-label": "Name", id: `key-${key.id}-name` }, key.name),
        td("Key", h("code", { id: `key-${key.id}-hint`, text: key.hint })),
        td("Permissions", permissionsText(key.permissions)),
        td("Teams", teamsText(key.teams, teamName)),
        td("Created", when(key.created_at)),
        td("Last used", when(key.last_used_at)),
        td("Expires", when(key.expires_at)),
        // One piece in the cell, so that a narrow screen wraps it as text rather than squeezing
        // the badge.
        td(
          "Status",
          h(
            "span",
            {},
            h("span", { class: `badge ${status}`, text: status }),
            key.revoked_reason ? h("span", { class: "muted", text: ` (${REVOKED_REASONS[key.revoked_reason] ?? key.revoked_reason.replaceAll("_", " ")})` }) : "",
            live && key.rotated_to && key.retires_at ? h("span", { class: "muted", text: ` (rotated: works until ${when(key.retires_at)})` }) : "",
            /^https?:\/\//i.test(key.leak_url ?? "") ? h("a", { href: key.leak_url, rel: "noreferrer noopener", class: "leak", text: " where it was found" }) : "",
          ),
        ),
        td("Actions", actions),
      );
    });
    const columns = ["Name", "Key", "Permissions", "Teams", "Created", "Last used", "Expires", "Status", "Actions"];
    const start = keys.findIndex((k) => `key-${k.id}` === focusId);
    list.append(pagedTable({ caption: "Your API keys", columns, rows, label: "API key pages", size: 10, start }));
  }

  const create = h("section", { "aria-labelledby": "create-title", class: "card" }, h("h2", { id: "create-title", text: "New API key" }));
  // A key needs a paid team whose key policy lets me use keys: without one, the form would fail.
  const usable = teams.filter(keysAllowed);
  if (!anyPaid) {
    create.append(
      h(
        "p",
        { class: "notice" },
        "The external API needs a paid plan (Pro, Scale or Enterprise), and all your teams are on the Free plan. ",
        "Once a team you belong to is on a paid plan, you can create keys here. The console and MCP clients work on every plan.",
      ),
    );
  } else {
    // The form stays, its teams marked unavailable with their reasons; above it, why no key
    // can be made now.
    if (usable.length === 0) {
      create.append(
        h(
          "p",
          { class: "notice" },
          "No key can be made now: the external API needs a paid plan, and the key policy of each of your paid teams keeps you from using keys on it. ",
          "An owner or admin of such a team can change its key policy.",
        ),
      );
    }
    create.append(
      keyForm({
        prefix: "new-",
        teams,
        submit: "Create API key",
        onSubmit: async (body) => {
          const created = await api("POST", "/account/api-keys", body);
          await apiKeysPage(`key-${created.api_key.id}`);
          secretDialog(created.key, () => document.getElementById(`key-${created.api_key.id}`)?.focus());
        },
      }),
    );
  }
  show(list, create);
  if (focusId) document.getElementById(focusId)?.focus();
}

function editKey(key, teams) {
  const dialog = h("dialog", { "aria-labelledby": "edit-title" }, h("h2", { id: "edit-title", text: `Edit “${key.name}”` }));
  const form = keyForm({
    prefix: "edit-",
    teams,
    key,
    submit: "Save",
    onSubmit: async (body) => {
      await api("PATCH", `/account/api-keys/${encodeURIComponent(key.id)}`, body);
      dialog.close();
      await apiKeysPage(`key-${key.id}`);
    },
  });
  form.querySelector(".actions").append(h("button", { type: "button", onclick: () => dialog.close(), text: "Cancel" }));
  dialog.append(form);
  openDialog(dialog);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  // Children may come as nested lists (a bar per kind per day); every one is an element.
  for (const child of children.flat(Infinity)) el.append(child);
  return el;
}

/**
 * A key's requests over the last 30 days: stacked bars per day (successes below, refusals and
 * errors above), with the same figures in a table for screen readers and keyboard users.
 */
async function keyUsage(key) {
  let days;
  try {
    days = await api("GET", `/account/api-keys/${encodeURIComponent(key.id)}/usage?days=30`);
  } catch (error) {
    alertError(error);
    return;
  }
  const kinds = [
    ["success", "Successful"],
    ["client_error", "Client errors"],
    ["rate_limited", "Rate limited"],
    ["server_error", "Server errors"],
  ];
  const total = (d) => kinds.reduce((sum, [k]) => sum + d[k], 0);
  const max = Math.max(1, ...days.map(total));
  const [width, height, gap] = [600, 160, 2];
  const bar = width / days.length;
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-labelledby": "usage-title usage-summary" },
    days.map((d, i) => {
      let y = height;
      return kinds.map(([k]) => {
        const h = (d[k] / max) * (height - 10);
        y -= h;
        return svg("rect", { x: i * bar + gap / 2, y, width: bar - gap, height: h, class: `bar ${k}` }, svg("title", {}, `${d.date}: ${d[k]} ${k.replace("_", " ")}`));
      });
    }),
  );
  const sum = days.reduce((s, d) => s + total(d), 0);
  const rows = days
    .filter((d) => total(d) > 0)
    .map((d) => h("tr", {}, td("Day", d.date), kinds.map(([k, label]) => td(label, String(d[k])))));
  const dialog = h(
    "dialog",
    { "aria-labelledby": "usage-title", class: "wide" },
    h("h2", { id: "usage-title", text: `Usage of “${key.name}”, last 30 days` }),
    h("p", { id: "usage-summary", text: `${sum} requests in all.` }),
    chart,
    h("p", { class: "legend" }, kinds.map(([k, label]) => h("span", { class: `key ${k}`, text: label }))),
    rows.length ? table("Requests per day", ["Day", ...kinds.map(([, label]) => label)], rows) : h("p", { class: "muted", text: "No requests yet." }),
    h("div", { class: "actions" }, h("button", { type: "button", autofocus: true, onclick: () => dialog.close(), text: "Close" })),
  );
  openDialog(dialog);
}

/** A new secret for a key; the old one keeps working for the chosen grace period. */
function rotateKey(key) {
  const grace = h(
    "select",
    { name: "grace" },
    [
      ["0", "None: the old key stops at once"],
      ["3600", "1 hour"],
      ["86400", "1 day"],
      ["604800", "7 days"],
    ].map(([value, label]) => h("option", { value, text: label, selected: value === "86400" })),
  );
  const dialog = h(
    "dialog",
    { "aria-labelledby": "rotate-title", "aria-describedby": "rotate-text" },
    h("h2", { id: "rotate-title", text: `Rotate “${key.name}”?` }),
    h("p", { id: "rotate-text", text: "A new secret replaces this key. The old secret keeps working for the grace period, then stops." }),
  );
  const form = h(
    "form",
    { novalidate: true },
    field("Grace period", "rotate-grace", grace),
    h("p", { class: "error form-error", role: "alert", tabindex: "-1", hidden: true }),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => dialog.close(), text: "Cancel" }),
      h("button", { type: "submit", class: "primary", text: "Rotate" }),
    ),
  );
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const rotated = await api("POST", `/account/api-keys/${encodeURIComponent(key.id)}/rotate`, {
        grace_period_seconds: Number(grace.value),
      });
      dialog.close();
      await apiKeysPage(`key-${rotated.api_key.id}`);
      secretDialog(rotated.key, () => document.getElementById(`key-${rotated.api_key.id}`)?.focus());
    } catch (error) {
      showError(form, error, { grace_period_seconds: "rotate-grace" });
    }
  });
  dialog.append(form);
  openDialog(dialog);
}

async function revokeKey(key) {
  const sure = await confirmDialog({
    title: `Revoke “${key.name}”?`,
    // Two keys share a name after a rotation: the hint tells them apart.
    text: `${key.hint}: every program using this key stops working at once. This cannot be undone.`,
    confirm: "Revoke",
  });
  if (!sure) return;
  try {
    await api("DELETE", `/account/api-keys/${encodeURIComponent(key.id)}`);
    // The list is drawn at the revoked key's page, with focus on its row, and says what was done.
    await apiKeysPage(`key-${key.id}`);
    announceAfter(document.getElementById("keys-title"), `Revoked “${key.name}” (${key.hint}).`);
  } catch (error) {
    alertError(error);
  }
}

function alertError(error) {
  const app = document.getElementById("app");
  app.prepend(h("p", { class: "error", role: "alert", text: error.message }));
}

// Teams.

/** My teams, each with a link to its settings page, and "Create team". */
async function teamsPage(focusId) {
  const teams = await api("GET", "/teams");
  const rows = teams.map((team) =>
    h(
      "tr",
      {},
      td("Team", team.name),
      td("Your role", team.role),
      td("Plan", PLAN_NAMES[team.plan] ?? team.plan),
      // Every member has a settings page: owners and admins manage the team there, and anyone
      // may leave it.
      td("Settings", h("a", { id: `team-link-${team.id}`, href: `/settings/teams/${encodeURIComponent(team.id)}`, text: `Settings of ${team.name}` })),
    ),
  );
  const name = h("input", { name: "name", required: true, maxlength: "100", autocomplete: "off" });
  const form = h(
    "form",
    { novalidate: true, class: "compact" },
    h("p", { class: "muted", text: "You will be its owner. Add members, websites and a plan to it afterwards." }),
    field("Name", "team-name", name),
    h("p", { class: "error form-error", role: "alert", tabindex: "-1", hidden: true }),
    h("button", { type: "submit", class: "primary", text: "Create team" }),
  );
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (missing(form, [["team-name", "Name"]])) return;
    try {
      const team = await api("POST", "/teams", { name: name.value });
      // The page is drawn anew with the new team: focus goes to its link.
      await teamsPage(`team-link-${team.id}`);
    } catch (error) {
      showError(form, error, { name: "team-name" });
    }
  });
  show(
    // The table is the region named "Your teams"; the section naming itself too would make two
    // regions of one name.
    h("section", { class: "card" }, h("h2", { text: "Your teams" }), table("Your teams", ["Team", "Your role", "Plan", "Settings"], rows)),
    h("section", { class: "card", "aria-labelledby": "create-team-title" }, h("h2", { id: "create-team-title", text: "Create a team" }), form),
  );
  if (focusId) document.getElementById(focusId)?.focus();
  const left = sessionStorage.getItem("left-team");
  if (left !== null) {
    sessionStorage.removeItem("left-team");
    const title = document.getElementById("page-title");
    title.setAttribute("tabindex", "-1");
    title.focus();
    announceAfter(title, `You left ${left}.`);
  }
}

const POLICIES = [
  ["all_members", "All members"],
  ["admins_only", "Owners and admins only"],
  ["nobody", "No one"],
];

async function teamPage() {
  const teamId = document.body.dataset.team;
  const [teams, me] = await Promise.all([api("GET", "/teams"), api("GET", "/me")]);
  const team = teams.find((t) => t.id === teamId);
  if (!team) {
    return show(
      h("p", { class: "notice", text: "You are not a member of this team." }),
      h("p", {}, h("a", { href: "/settings/teams", text: "Go to your teams" })),
    );
  }
  document.getElementById("page-title").textContent = `Team settings: ${team.name}`;
  document.title = `${plainTitle(team.name)} · Zenovay`;
  const path = `/teams/${encodeURIComponent(team.id)}`;
  const leave = leaveSection(team, path, me);
  if (team.role === "member") return show(h("p", { class: "notice", text: "Only the team's owners and admins manage its settings." }), leave);
  const draw = async () => {
    const [members, usage] = await Promise.all([api("GET", `${path}/members`), api("GET", `${path}/usage`)]);
    const audit = await auditSection(path);
    // "Security & access" as the contract names this part of a team's settings: who may use
    // keys, the plan and its usage, who is in the team, and what was done.
    const security = h(
      "section",
      { class: "security", "aria-labelledby": "security-title" },
      h("h2", { id: "security-title", text: "Security & access" }),
      policySection(team, path),
      planSection(usage),
      membersSection(team, members, path, redraw),
      audit,
    );
    show(security, leave);
  };
  // A change of members shows in the usage by member and the audit log too; what was done is
  // said under the heading that takes the focus.
  const redraw = async (done) => {
    await draw();
    const title = document.getElementById("members-title");
    if (done) announceAfter(title, done);
    title.focus();
  };
  await draw();
}

/**
 * "Leave team", for any member, after a confirmation; the team's last owner is refused by the
 * API (409), whose message is said next to the button. Having left, the person goes back to
 * their teams.
 */
function leaveSection(team, path, me) {
  const refused = h("p", { class: "error", id: "leave-error", role: "alert", hidden: true });
  const button = h("button", {
    type: "button",
    class: "danger",
    "aria-describedby": "leave-error",
    text: "Leave team",
    onclick: async () => {
      refused.hidden = true;
      refused.textContent = "";
      const sure = await confirmDialog({
        title: `Leave ${team.name}?`,
        text: "You lose access to this team and its websites at once, and so do your API keys and connected apps. Only its owners and admins can add you back.",
        confirm: "Leave",
      });
      if (!sure) return;
      try {
        await api("DELETE", `${path}/members/${encodeURIComponent(me.id)}`);
        // The teams page says which team was left; told through this tab's storage, not the
        // address, which anyone could write a team's name into.
        sessionStorage.setItem("left-team", team.name);
        location.assign("/settings/teams");
      } catch (error) {
        refused.textContent = error.message;
        refused.hidden = false;
      }
    },
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "leave-title" },
    h("h2", { id: "leave-title", text: "Leave this team" }),
    h("p", { text: `You are ${team.role === "admin" || team.role === "owner" ? "an" : "a"} ${team.role} of ${team.name}.` }),
    h("div", { class: "actions" }, button),
    refused,
  );
}

const PLAN_NAMES = { free: "Free", pro: "Pro", scale: "Scale", enterprise: "Enterprise" };

/** A labelled meter of `used` against `limit`, with the figures said in words too. */
function meter(label, id, used, limit) {
  const text = `${used.toLocaleString()} of ${limit.toLocaleString()}`;
  return h(
    "div",
    { class: "meter-row" },
    h("span", { id, class: "sr-only", text: label }),
    h("meter", { min: "0", max: String(Math.max(limit, 1)), low: String(limit * 0.75), high: String(limit * 0.9), optimum: "0", value: String(Math.min(used, limit)), "aria-labelledby": id, "aria-valuetext": text }),
    // Said by the meter's value text already; shown for the eye.
    h("span", { class: "meter-text", "aria-hidden": "true", text }),
  );
}

/**
 * The plan, its limits and this month's usage: the monthly quota and the daily MCP calls are
 * per person, so each member has their own meters.
 */
function planSection(usage) {
  const limits = usage.limits;
  const section = h(
    "section",
    { class: "card", "aria-labelledby": "plan-title" },
    h("h3", { id: "plan-title", text: "Plan and usage" }),
    h(
      "dl",
      { class: "limits" },
      h("div", {}, h("dt", { text: "Plan" }), h("dd", { text: PLAN_NAMES[usage.plan] ?? usage.plan })),
      h("div", {}, h("dt", { text: "API requests per minute, per key" }), h("dd", { text: limits.api_access ? limits.requests_per_minute.toLocaleString() : "No API access" })),
      h("div", {}, h("dt", { text: "API requests per month, per person" }), h("dd", { text: limits.api_access ? limits.requests_per_month.toLocaleString() : "No API access" })),
      h("div", {}, h("dt", { text: "MCP tool calls per day, per person" }), h("dd", { text: limits.mcp_calls_per_day.toLocaleString() })),
    ),
  );
  if (!limits.api_access) {
    section.append(h("p", { class: "notice", text: "The external API needs a paid plan (Pro, Scale or Enterprise). MCP clients work on every plan." }));
  }
  const rows = usage.members.map((m, i) =>
    h(
      "tr",
      {},
      td("Member", m.email),
      td("API requests this month", limits.api_access ? meter(`API requests this month by ${m.email}`, `usage-month-${i}`, m.requests_this_month, limits.requests_per_month) : String(m.requests_this_month)),
      td("MCP tool calls today", meter(`MCP tool calls today by ${m.email}`, `usage-mcp-${i}`, m.mcp_calls_today, limits.mcp_calls_per_day)),
    ),
  );
  section.append(
    h("p", { class: "muted", text: `Monthly counts start again on ${when(usage.month_resets_at)}, daily ones at ${when(usage.day_resets_at)}. A person's count covers all their keys.` }),
    pagedTable({ caption: "Usage by member", columns: ["Member", "API requests this month", "MCP tool calls today"], rows, label: "Usage pages" }),
  );
  return section;
}

function policySection(team, path) {
  const status = h("p", { class: "muted", role: "status" });
  const form = h(
    "form",
    { novalidate: true },
    h(
      "fieldset",
      { id: "policy" },
      h("legend", { text: "Who may create and use API keys on this team" }),
      POLICIES.map(([value, label]) => choice("radio", "policy", value, label, `policy-${value}`, { checked: team.api_key_policy === value }).row),
      h("p", { class: "error", id: "policy-error", role: "alert", hidden: true }),
    ),
    h("p", { class: "error form-error", role: "alert", hidden: true }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: "Save" }), status),
  );
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    status.textContent = "";
    try {
      const policy = new FormData(form).get("policy");
      await api("PUT", `${path}/api-key-policy`, { policy });
      team.api_key_policy = policy;
      status.textContent = "Saved. It applies to every key at once.";
    } catch (error) {
      showError(form, error, { policy: "policy" });
    }
  });
  return h("section", { class: "card", "aria-labelledby": "policy-title" }, h("h3", { id: "policy-title", text: "API key policy" }), form);
}

function roleSelect(id, value, label) {
  return h(
    "select",
    { id, "aria-label": label },
    ["owner", "admin", "member"].map((role) => h("option", { value: role, selected: role === value, text: role[0].toUpperCase() + role.slice(1) })),
  );
}

function membersSection(team, members, path, reload) {
  const rows = members.map((member) => {
    const select = roleSelect(`role-${member.user_id}`, member.role, `Role of ${member.email}`);
    // A refused change (the last owner, an admin making an owner) is said next to the role.
    const refused = h("p", { class: "error", id: `role-${member.user_id}-error`, role: "alert", hidden: true });
    select.setAttribute("aria-describedby", refused.id);
    // Choosing a role only chooses it (arrow keys on a select change its value at once); "Save"
    // makes the change. It shows while the choice differs from the member's role, so that a row
    // offers it only when there is something to save, and it follows the select in tab order.
    const save = h("button", { type: "button", class: "primary", hidden: true, text: "Save" });
    select.addEventListener("change", () => {
      refused.hidden = true;
      save.hidden = select.value === member.role;
    });
    save.addEventListener("click", async () => {
      refused.hidden = true;
      save.disabled = true;
      try {
        await api("PATCH", `${path}/members/${encodeURIComponent(member.user_id)}`, { role: select.value });
        await reload(`${member.email} is now ${select.value === "member" ? "a member" : `an ${select.value}`}.`);
      } catch (error) {
        select.value = member.role;
        save.hidden = true;
        save.disabled = false;
        refused.textContent = error.message;
        refused.hidden = false;
        // The button pressed is gone with the choice put back: focus goes to the role it concerns.
        select.focus();
      }
    });
    const remove = h("button", {
      type: "button",
      class: "danger",
      "aria-label": `Remove ${member.email}`,
      text: "Remove",
      onclick: async () => {
        const sure = await confirmDialog({ title: `Remove ${member.email}?`, text: "They lose access to this team and its websites at once.", confirm: "Remove" });
        if (!sure) return;
        try {
          await api("DELETE", `${path}/members/${encodeURIComponent(member.user_id)}`);
          await reload(`Removed ${member.email}.`);
        } catch (error) {
          alertError(error);
        }
      },
    });
    return h("tr", {}, td("Email", member.email), td("Name", member.name), td("Role", h("div", { class: "role-pick" }, select, save, refused)), td("Joined", when(member.joined_at)), td("Actions", remove));
  });
  const email = h("input", { name: "email", type: "email", autocomplete: "off", required: true });
  const form = h(
    "form",
    { novalidate: true, class: "compact" },
    h("h4", { text: "Add a member" }),
    h("p", { class: "muted", text: "They need an account already: ask them to sign up first." }),
    field("Email", "member-email", email),
    field("Role", "member-role", roleSelect("member-role", "member")),
    h("p", { class: "error form-error", role: "alert", hidden: true }),
    h("button", { type: "submit", text: "Add member" }),
  );
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (missing(form, [["member-email", "Email"]])) return;
    try {
      const role = form.querySelector("#member-role").value;
      await api("POST", `${path}/members`, { email: email.value, role });
      await reload(`Added ${email.value} as ${role}.`);
    } catch (error) {
      showError(form, error, { email: "member-email", role: "member-role", NOT_FOUND: "member-email", CONFLICT: "member-email" });
    }
  });
  // The role select of the add form is labelled by its <label>, not by aria-label.
  form.querySelector("#member-role").removeAttribute("aria-label");
  return h(
    "section",
    { class: "card", id: "members", "aria-labelledby": "members-title" },
    h("h3", { id: "members-title", tabindex: "-1", text: "Members" }),
    pagedTable({ caption: `Members of ${team.name}`, columns: ["Email", "Name", "Role", "Joined", "Actions"], rows, label: "Member pages" }),
    form,
  );
}

/** An audit entry's details as `name: value` pairs, nested ones by their path, unset ones left out. */
function detailsText(details, prefix = "") {
  if (!details || typeof details !== "object") return "";
  return Object.entries(details)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([name, value]) => {
      if (Array.isArray(value)) return `${prefix}${name}: ${value.join(", ")}`;
      if (typeof value === "object") return detailsText(value, `${prefix}${name}.`);
      return `${prefix}${name}: ${value}`;
    })
    .filter(Boolean)
    .join(" · ");
}

/** What each audit action means, in words; the action's code stays beside it, as the API names it. */
const AUDIT_ACTIONS = {
  "api_key.created": "API key created",
  "api_key.updated": "API key edited",
  "api_key.rotated": "API key rotated",
  "api_key.revoked": "API key revoked",
  "api_key.leaked": "API key reported leaked and revoked",
  "member.added": "Member added",
  "member.removed": "Member removed",
  "member.role_changed": "Member's role changed",
  "team.api_key_policy_changed": "Key policy changed",
  "team.plan_changed": "Plan changed",
};

async function auditSection(path) {
  const section = h("section", { class: "card", "aria-labelledby": "audit-title" }, h("h3", { id: "audit-title", text: "Audit log" }));
  // Paged by the server: the whole log can be reached, however many entries it holds.
  const load = async (page, size) => {
    const answer = await envelope("GET", `${path}/audit-log?per_page=${size}&page=${page}`);
    return { items: answer.data, total: answer.pagination.total };
  };
  const row = (e) =>
    h(
      "tr",
      {},
      td("When", when(e.created_at)),
      td("Action", AUDIT_ACTIONS[e.action] ?? e.action, " ", h("code", { class: "reason", text: e.action })),
      td("By", e.actor_email ?? e.actor_id),
      td("Details", detailsText(e.details)),
    );
  const render = (entries) =>
    entries.length
      ? table("Newest first", ["When", "Action", "By", "Details"], entries.map(row))
      : h("p", { class: "muted", text: "Nothing recorded yet. Changes to members, keys and the key policy appear here." });
  section.append(await serverPaged({ label: "Audit log pages", load, render }));
  return section;
}

// Connected apps.

/** The page; `done` says under its heading what was just done. */
async function connectedAppsPage(done) {
  const [teams, connections] = await Promise.all([api("GET", "/teams"), api("GET", "/account/mcp-connections")]);
  const teamName = new Map(teams.map((t) => [t.id, t.name]));
  const live = connections.filter((c) => !c.revoked_at);
  const section = h("section", { class: "card", "aria-labelledby": "apps-title" }, h("h2", { id: "apps-title", tabindex: "-1", text: "MCP clients" }));
  if (live.length === 0) {
    section.append(
      h("p", { class: "notice" }, "No connected apps. Point an MCP client such as Claude or Cursor at ", h("code", { text: `${location.origin}/mcp` }), " and approve it; it appears here."),
    );
  } else {
    const rows = live.map((c) =>
      h(
        "tr",
        {},
        // The row's Revoke is described by its client, which tells the rows apart.
        h("td", { "data-label": "Client", id: `app-${c.id}-client` }, c.client_name || c.client_id),
        td("Team", teamName.get(c.team_id) ?? c.team_id),
        td("Scopes", c.scopes.join(", ")),
        td("Connected", when(c.created_at)),
        td("Last used", when(c.last_used_at)),
        td(
          "Actions",
          h("button", {
            type: "button",
            class: "danger",
            text: "Revoke",
            "aria-describedby": `app-${c.id}-client`,
            onclick: async () => {
              const sure = await confirmDialog({ title: `Revoke ${c.client_name || "this client"}?`, text: "It loses access at once and must be approved again.", confirm: "Revoke" });
              if (!sure) return;
              try {
                await api("DELETE", `/account/mcp-connections/${encodeURIComponent(c.id)}`);
                await connectedAppsPage(`Revoked ${c.client_name || "the client"}: it must be approved again to connect.`);
                document.getElementById("apps-title")?.focus();
              } catch (error) {
                alertError(error);
              }
            },
          }),
        ),
      ),
    );
    section.append(table("Apps you connected", ["Client", "Team", "Scopes", "Connected", "Last used", "Actions"], rows));
  }
  show(section);
  if (done) announceAfter(section.querySelector("h2"), done);
}

// Password and sessions.

/** The page, drawn anew after each change; `done` is said under the heading that takes the focus. */
async function passwordPage({ focus, done } = {}) {
  const sessions = await api("GET", "/account/sessions");
  const current = h("input", { type: "password", name: "current-password", autocomplete: "current-password", required: true });
  const next = h("input", { type: "password", name: "new-password", autocomplete: "new-password", required: true, minlength: "8", maxlength: "128" });
  const form = h(
    "form",
    { novalidate: true, class: "compact" },
    h("p", { class: "muted", text: "8 to 128 characters. Your other sessions end when it changes; this one stays. API keys and connected apps keep working." }),
    field("Current password", "current-password", current),
    field("New password", "new-password", next),
    h("p", { class: "error form-error", role: "alert", tabindex: "-1", hidden: true }),
    h("button", { type: "submit", class: "primary", text: "Change password" }),
  );
  whenSubmitted(form, async () => {
    clearErrors(form);
    if (missing(form, [["current-password", "Current password"], ["new-password", "New password"]])) return;
    let changed;
    try {
      changed = await api("PUT", "/account/password", { current_password: current.value, new_password: next.value });
    } catch (error) {
      return showError(form, error, { current_password: "current-password", new_password: "new-password" });
    }
    // Changed: a page that cannot be drawn again now must not read as a refused change.
    const ended = changed.sessions_ended === 1 ? "1 other session ended" : `${changed.sessions_ended} other sessions ended`;
    await passwordPage({ focus: "password-title", done: `Password changed; ${ended}.` }).catch(failed);
  });
  const end = (session) => async () => {
    const sure = await confirmDialog({ title: "End this session?", text: `The browser signed in on ${when(session.created_at)} is logged out at once.`, confirm: "End session" });
    if (!sure) return;
    try {
      await api("DELETE", `/account/sessions/${encodeURIComponent(session.id)}`);
      await passwordPage({ focus: "sessions-title", done: `Ended the session signed in on ${when(session.created_at)}.` });
    } catch (error) {
      alertError(error);
    }
  };
  // This session first, then the others newest first, as the API lists them.
  const ordered = [...sessions.filter((s) => s.current), ...sessions.filter((s) => !s.current)];
  const rows = ordered.map((s) => {
    // Each "End session" is described by its row's sign-in and browser, which tell the rows apart.
    const [signedIn, browser] = [`session-${s.id}-signed-in`, `session-${s.id}-browser`];
    const button = h("button", { type: "button", class: "danger", text: "End session", "aria-describedby": `${signedIn} ${browser}`, onclick: end(s) });
    return h(
      "tr",
      {},
      h("td", { "data-label": "Signed in", id: signedIn }, when(s.created_at)),
      td("Last used", s.current ? "Now" : when(s.last_used_at)),
      h("td", { "data-label": "Browser", id: browser }, s.user_agent || "Unknown"),
      td("Expires", when(s.expires_at)),
      td("Actions", s.current ? "This session" : button),
    );
  });
  show(
    h("section", { class: "card", "aria-labelledby": "password-title" }, h("h2", { id: "password-title", tabindex: "-1", text: "Change password" }), form),
    h(
      "section",
      { class: "card", "aria-labelledby": "sessions-title" },
      h("h2", { id: "sessions-title", tabindex: "-1", text: "Sessions" }),
      pagedTable({ caption: "Where you are signed in: this session, then the others newest first", columns: ["Signed in", "Last used", "Browser", "Expires", "Actions"], rows, label: "Session pages" }),
    ),
  );
  if (focus) {
    const title = document.getElementById(focus);
    title?.focus();
    if (done) announceAfter(title, done);
  }
}

// A website's statistics.

const PERIODS = [
  ["day", "Today"],
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
  ["90d", "Last 90 days"],
  ["12mo", "Last 12 months"],
  ["custom", "Custom range"],
];
const FIGURES = [
  ["visitors", "Visitors"],
  ["visits", "Visits"],
  ["pageviews", "Pageviews"],
  ["bounce_rate", "Bounce rate"],
  ["visit_duration", "Visit duration"],
];
/** Each breakdown: its key in the answer, its title, and the dimension a click filters by. */
const BREAKDOWNS = [
  ["pages", "Top pages", "event:page"],
  ["entry_pages", "Entry pages", "visit:entry_page"],
  ["exit_pages", "Exit pages", "visit:exit_page"],
  ["sources", "Sources", "visit:source"],
  ["utm_campaigns", "UTM campaigns", "visit:utm_campaign"],
  ["countries", "Countries", "visit:country"],
  ["devices", "Devices", "visit:device"],
  ["browsers", "Browsers", "visit:browser"],
  ["operating_systems", "Operating systems", "visit:os"],
];

function figureText(metric, value) {
  if (metric === "bounce_rate") return `${value}%`;
  if (metric === "visit_duration") return `${Math.floor(value / 60)}m ${value % 60}s`;
  return String(value);
}

function changeText(metric, change) {
  const unit = metric === "bounce_rate" ? " points" : "%";
  return `${change > 0 ? "+" : ""}${change}${unit} vs previous period`;
}

/** Visitors and pageviews over the period as lines, with the same figures in a table. */
function seriesChart(series) {
  const [width, height] = [600, 160];
  const max = Math.max(1, ...series.flatMap((p) => [p.visitors, p.pageviews]));
  const step = series.length > 1 ? width / (series.length - 1) : 0;
  const line = (metric) =>
    svg("polyline", {
      class: `line ${metric}`,
      fill: "none",
      points: series.map((p, i) => `${i * step},${height - (p[metric] / max) * (height - 10)}`).join(" "),
    });
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": "Visitors and pageviews over time" },
    line("pageviews"),
    line("visitors"),
  );
  const rows = series.map((p) => h("tr", {}, td("Time", p.date), td("Visitors", String(p.visitors)), td("Pageviews", String(p.pageviews))));
  return h(
    "section",
    { class: "card", "aria-labelledby": "series-title" },
    h("h2", { id: "series-title", text: "Visitors and pageviews" }),
    chart,
    // The chart's ends and its top, for reading it without the table.
    series.length
      ? h("p", { class: "axis muted", "aria-hidden": "true" }, h("span", { text: series[0].date }), h("span", { text: `top: ${max}` }), h("span", { text: series[series.length - 1].date }))
      : "",
    h("p", { class: "legend" }, h("span", { class: "key visitors", text: "Visitors" }), h("span", { class: "key pageviews", text: "Pageviews" })),
    h("details", {}, h("summary", { text: "Figures as a table" }), table("Visitors and pageviews over time", ["Time", "Visitors", "Pageviews"], rows, { stack: false })),
  );
}

/**
 * The custom period's two days, checked here first (both given, in order) and then by the
 * server, whose refusal names `date`: each error appears next to the day it concerns.
 */
function customRange(apply) {
  const from = h("input", { type: "date", name: "from", required: true });
  const to = h("input", { type: "date", name: "to", required: true, value: localDate(new Date().toISOString()) });
  // Until someone picks a day, "To" is today where the site is (see `siteToday`).
  to.addEventListener("input", () => (to.dataset.picked = "true"));
  const form = h(
    "form",
    { class: "range", novalidate: true, hidden: true, "aria-label": "Custom range" },
    field("From", "range-from", from),
    field("To", "range-to", to),
    h("p", { class: "error form-error", role: "alert", hidden: true }),
    h("button", { type: "submit", text: "Apply" }),
  );
  const refuse = (message) => showError(form, { message }, { From: "range-from", To: "range-to" });
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!from.value) return refuse("From: choose the first day of the range.");
    if (!to.value) return refuse("To: choose the last day of the range.");
    if (from.value > to.value) return refuse("To: the last day must not be before the first.");
    try {
      await apply(`${from.value},${to.value}`);
    } catch (error) {
      showError(form, error, { date: "range-from" });
    }
  });
  form.siteToday = (timezone) => {
    if (to.dataset.picked) return;
    // The date input's YYYY-MM-DD, from the parts of today in the site's zone.
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat("en-US", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date()).map((p) => [p.type, p.value]),
    );
    to.value = `${parts.year}-${parts.month}-${parts.day}`;
  };
  return form;
}

/** A row's value as a button that filters the page by it: named by the value, described by what it does. */
function filterButton(value, onclick) {
  return h("button", { type: "button", class: "link", text: value, onclick, "aria-describedby": "filter-hint" });
}

function revenueText(revenue) {
  return revenue ? revenue.short : "";
}

/**
 * Goals: each one's unique and total conversions and conversion rate in the period (revenue for
 * revenue goals), the goals themselves with "Delete", and a form to add one.
 */
function goalsSection({ rows, goals, websiteId, filterBy, reload }) {
  const withRevenue = rows.some((row) => row.total_revenue);
  const columns = ["Goal", "Uniques", "Total", "Conversion rate"].concat(withRevenue ? ["Revenue"] : []);
  const lines = rows.map((row) =>
    h(
      "tr",
      {},
      td("Goal", filterButton(row.value, () => filterBy("event:goal", row.value, "Goal"))),
      td("Uniques", String(row.visitors)),
      td("Total", String(row.events)),
      td("Conversion rate", `${row.conversion_rate}%`),
      withRevenue ? td("Revenue", revenueText(row.total_revenue)) : "",
    ),
  );
  const summary = goals.length
    ? lines.length
      ? table("Goals", columns, lines, { stack: false })
      : h("p", { class: "muted", text: "Goals: no conversions in this period." })
    : h("p", { class: "muted", text: "No goals yet. Add one below: a custom event's name (such as Signup) or a page path (such as /thank-you)." });
  const list = goals.length
    ? h(
        "details",
        {},
        h("summary", { text: `Manage goals (${goals.length})` }),
        h(
          "ul",
          { class: "goal-list" },
          goals.map((goal) =>
            h(
              "li",
              {},
              h("span", { text: goal.currency ? `${goal.display_name} (${goal.currency})` : goal.display_name }),
              h("button", {
                type: "button",
                text: "Delete",
                "aria-label": `Delete goal ${goal.display_name}`,
                onclick: async () => {
                  const yes = await confirmDialog({ title: "Delete goal?", text: `The goal "${goal.display_name}" goes; its events stay.`, confirm: "Delete" });
                  if (!yes) return;
                  try {
                    await api("DELETE", `/websites/${encodeURIComponent(websiteId)}/goals/${encodeURIComponent(goal.id)}`);
                    await reload();
                    // The section is drawn anew: the list stays open while goals remain, with
                    // focus on it, else focus goes to the section's heading.
                    const details = document.querySelector('[data-section="goals"] details');
                    if (details) {
                      details.open = true;
                      details.querySelector("summary").focus();
                    } else {
                      document.getElementById("goals-title")?.focus();
                    }
                  } catch (error) {
                    alertError(error);
                  }
                },
              }),
            ),
          ),
        ),
      )
    : "";
  return h(
    "section",
    // The table is the region named "Goals", as each breakdown's table is; the section naming
    // itself too would make two regions of one name.
    { class: "card", "data-section": "goals" },
    h("h2", { id: "goals-title", tabindex: "-1", text: "Goals" }),
    summary,
    list,
    goalForm(websiteId, reload),
  );
}

/** "Add goal": a custom event's name or a page path, and a currency for a revenue goal. */
function goalForm(websiteId, reload) {
  const eventName = h("input", { name: "event_name", maxlength: "120" });
  const pagePath = h("input", { name: "page_path", placeholder: "/thank-you" });
  const currency = h("input", { name: "currency", maxlength: "3", placeholder: "EUR" });
  const form = h(
    "form",
    { class: "goal-form", novalidate: true, "aria-label": "Add goal" },
    field("Event name", "goal-event", eventName),
    field("Page path", "goal-page", pagePath),
    field("Currency (revenue goals)", "goal-currency", currency),
    h("p", { class: "error form-error", role: "alert", tabindex: "-1", hidden: true }),
    h("button", { type: "submit", class: "primary", text: "Add goal" }),
  );
  whenSubmitted(form, async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {};
    if (eventName.value.trim()) body.event_name = eventName.value.trim();
    if (pagePath.value.trim()) body.page_path = pagePath.value.trim();
    if (currency.value.trim()) body.currency = currency.value.trim().toUpperCase();
    if (!body.event_name === !body.page_path) {
      // One of the two names the goal: said in the form's words, before asking.
      const slot = form.querySelector("#goal-event-error");
      slot.textContent = body.event_name
        ? "Event name: give an event name or a page path, not both."
        : "Event name: give an event name, or a page path instead.";
      slot.hidden = false;
      eventName.setAttribute("aria-invalid", "true");
      eventName.focus();
      return;
    }
    try {
      await api("POST", `/websites/${encodeURIComponent(websiteId)}/goals`, body);
      await reload();
      // The section is drawn anew: focus its heading, as the form it was in is gone.
      document.getElementById("goals-title")?.focus();
    } catch (error) {
      showError(form, error, { event_name: "goal-event", page_path: "goal-page", currency: "goal-currency", CONFLICT: body.page_path ? "goal-page" : "goal-event" });
    }
  });
  return form;
}

/** Custom events with their visitors and events; choosing one filters the page by it. */
function customEventsSection(rows, filterBy) {
  const lines = rows.map((row) =>
    h(
      "tr",
      {},
      td("Event", filterButton(row.value, () => filterBy("event:name", row.value, "Event"))),
      td("Visitors", String(row.visitors)),
      td("Events", String(row.events)),
    ),
  );
  return h(
    "section",
    { class: "card", "data-section": "custom-events" },
    h("h2", { id: "events-title", text: "Custom events" }),
    lines.length
      ? table("Custom events", ["Event", "Visitors", "Events"], lines, { stack: false })
      : h("p", { class: "muted", text: "No custom events in this period. Send one from your site, as in zenovay('Signup', {props: {plan: 'pro'}}) with the snippet's script (or plausible(…) with Plausible's), and it appears here." }),
  );
}

/**
 * The custom properties of the chosen custom event: a property to break down by and its values'
 * visitors and events; a value filters the page by it.
 */
function propertiesSection({ props, filterBy, pick }) {
  const section = (...content) =>
    h("section", { class: "card", "aria-labelledby": "properties-title", "data-section": "properties" }, h("h2", { id: "properties-title", text: "Properties" }), ...content);
  if (!props) return section(h("p", { class: "muted", text: "Choose a custom event above to see the breakdown of its properties." }));
  if (props.error) return section(h("p", { role: "alert", text: `Could not load the properties: ${props.error}` }));
  if (!props.keys.length) {
    return section(h("p", { class: "muted", text: `${props.event} has no properties in this period. Send them with the event, as in zenovay('${props.event}', {props: {plan: 'pro'}}).` }));
  }
  const select = h(
    "select",
    { onchange: (event) => pick(event.target.value).catch(failed) },
    props.keys.map((key) => h("option", { value: key, selected: key === props.property, text: key })),
  );
  const dimension = `event:props:${props.property}`;
  const lines = props.rows.map((row) =>
    h(
      "tr",
      {},
      td(props.property, filterButton(row.value, () => filterBy(dimension, row.value, props.property))),
      td("Visitors", String(row.visitors)),
      td("Events", String(row.events)),
    ),
  );
  return section(
    h("p", { class: "muted", text: `Properties of ${props.event} events.` }),
    h("div", { class: "properties-pick" }, field("Property", "property-pick", select)),
    lines.length
      ? table(`Property ${props.property} of ${props.event}`, [props.property, "Visitors", "Events"], lines, { stack: false })
      : h("p", { class: "muted", text: "Nothing with this property under these filters." }),
  );
}

function rightNow(visitors) {
  return `${visitors} ${visitors === 1 ? "visitor" : "visitors"} right now`;
}

/** The title a filter's chip gives its dimension: its breakdown's, or the section's it is chosen in. */
function filterTitle(dimension) {
  const breakdown = BREAKDOWNS.find(([, , d]) => d === dimension);
  if (breakdown) return breakdown[1];
  if (dimension === "event:goal") return "Goal";
  if (dimension === "event:name") return "Event";
  if (dimension.startsWith("event:props:") && dimension.length > "event:props:".length) return dimension.slice("event:props:".length);
  return null;
}

/**
 * The view a website page's address asks for (`?period=7d&filter=visit:source==Google`, docs/behaviour.md
 * "Console"), so that a reload, a shared link and Back show what the reader saw. What the page
 * itself would not have offered (an unknown period, a malformed range, a dimension no section
 * filters by) is left out rather than refused.
 */
function viewOfAddress(search) {
  const params = new URLSearchParams(search);
  const asked = params.get("period");
  const range = params.get("date") ?? "";
  const customOk = /^\d{4}-\d{2}-\d{2},\d{4}-\d{2}-\d{2}$/.test(range) && range.slice(0, 10) <= range.slice(11);
  const known = PERIODS.some(([value]) => value === asked) && (asked !== "custom" || customOk);
  const filters = [];
  for (const filter of params.getAll("filter")) {
    const at = filter.indexOf("==");
    const [dimension, value] = at > 0 ? [filter.slice(0, at), filter.slice(at + 2)] : [filter, ""];
    const title = filterTitle(dimension);
    if (title && value && !filters.some(([d]) => d === dimension)) filters.push([dimension, value, title]);
  }
  return { period: known ? asked : "30d", date: known && asked === "custom" ? range : "", filters };
}

/** The address of a website page showing `view`, the inverse of {@link viewOfAddress}. */
function addressOfView(view) {
  const params = new URLSearchParams();
  if (view.period !== "30d") params.set("period", view.period);
  if (view.period === "custom") params.set("date", view.date);
  for (const [dimension, value] of view.filters) params.append("filter", `${dimension}==${value}`);
  const search = params.toString();
  return `${location.pathname}${search ? `?${search}` : ""}`;
}

async function websitePage() {
  const id = decodeURIComponent(location.pathname.split("/")[2] ?? "");
  const state = viewOfAddress(location.search);
  const period = h("select", { id: "period" }, PERIODS.map(([value, label]) => h("option", { value, selected: value === state.period, text: label })));
  const range = customRange(async (date) => {
    const before = { period: state.period, date: state.date };
    Object.assign(state, { period: "custom", date });
    try {
      await load();
    } catch (error) {
      Object.assign(state, before);
      // This range overtook any load still on its way, whose answer was dropped: draw the
      // choice put back, so that the page shows what the next change builds on.
      load().catch(unloaded);
      throw error;
    }
  });
  const now = h("p", { class: "realtime", role: "status", "aria-live": "polite" });
  const chips = h("div", { class: "chips", "aria-label": "Filters", role: "group" });
  const body = h("div", {});
  const query = () => {
    const params = new URLSearchParams({ period: state.period });
    if (state.period === "custom") params.set("date", state.date);
    // As v2 filters, whose values are taken as written: a page or a goal may hold `|`, `;` or
    // `*`, which the v1 text reads as syntax.
    if (state.filters.length) params.set("filters", JSON.stringify(state.filters.map(([d, v]) => ["is", d, [v]])));
    return `/websites/${encodeURIComponent(id)}/stats?${params}`;
  };
  const propertiesQuery = (event) => {
    const params = new URLSearchParams(query().split("?")[1]);
    params.set("event", event);
    if (state.property) params.set("property", state.property);
    return `/websites/${encodeURIComponent(id)}/properties?${params}`;
  };
  // Loads overlap when the period or a filter changes before the last answer came; only the
  // newest one draws, so an older answer arriving late cannot put back what the reader left.
  let latest = 0;
  const load = async () => {
    const mine = ++latest;
    // Busy until the latest choice is drawn: a screen reader waits for it, and so may a test
    // before it presses a control the drawing would replace.
    body.setAttribute("aria-busy", "true");
    // Choosing a custom event (filtering by it) shows its properties.
    const chosen = state.filters.find(([d]) => d === "event:name")?.[1];
    let data, goals, props;
    try {
      // A goal filter from a shared link or an old tab may name a goal deleted since: it is
      // dropped, as what the page would not offer is, rather than failing the page.
      const goalsAsked = api("GET", `/websites/${encodeURIComponent(id)}/goals`);
      if (state.filters.some(([d]) => d === "event:goal")) {
        const names = new Set((await goalsAsked).map((g) => g.display_name));
        state.filters = state.filters.filter(([d, v]) => d !== "event:goal" || names.has(v));
      }
      [data, goals, props] = await Promise.all([
        api("GET", query()),
        goalsAsked,
        // The properties are a part of the page: failing, they say why in their place.
        chosen ? api("GET", propertiesQuery(chosen)).catch((error) => ({ error: error.message })) : null,
      ]);
    } catch (error) {
      if (mine === latest) {
        body.removeAttribute("aria-busy");
        throw error;
      }
      return;
    }
    if (mine !== latest) return;
    body.removeAttribute("aria-busy");
    // Each view drawn gets its own entry in the tab's history; one drawn from the address
    // (the first, or Back and Forward) is already there.
    const address = addressOfView(state);
    if (address !== `${location.pathname}${location.search}`) history.pushState(null, "", address);
    document.getElementById("page-title").textContent = `${data.website.name} · statistics`;
    if (state.period !== "custom") range.siteToday(data.website.timezone);
    // The tab says which site and which period it shows, as the heading and the picker do.
    const shown = state.period === "custom" ? state.date.replace(",", " to ") : PERIODS.find(([value]) => value === state.period)?.[1];
    document.title = `${plainTitle(data.website.name)} · ${shown} · Zenovay`;
    now.textContent = rightNow(data.realtime_visitors);
    drawChips();
    const figures = h(
      "dl",
      { class: "figures" },
      FIGURES.map(([metric, label]) => {
        const f = data.figures[metric];
        return h(
          "div",
          { class: "figure", "data-metric": metric },
          h("dt", { text: label }),
          h("dd", { class: "value", text: figureText(metric, f.value) }),
          h("dd", { class: "change muted", text: changeText(metric, f.change) }),
        );
      }),
    );
    const filterBy = (dimension, value, title) => {
      if (dimension === "event:name") state.property = undefined;
      state.filters = state.filters.filter(([d]) => d !== dimension).concat([[dimension, value, title]]);
      refilter(dimension);
    };
    const breakdowns = BREAKDOWNS.map(([key, title, dimension]) => {
      const rows = data.breakdowns[key].map((row) =>
        h(
          "tr",
          {},
          td(
            title,
            // A filter needs a value: the row of those without one only reads.
            row.value
              ? filterButton(row.value, () => filterBy(dimension, row.value, title))
              : "(none)",
          ),
          td("Visitors", String(row.visitors)),
        ),
      );
      return h(
        "section",
        { class: "card", "data-breakdown": key },
        rows.length ? table(title, [title, "Visitors"], rows, { stack: false }) : h("p", { class: "muted", text: `${title}: nothing yet.` }),
      );
    });
    // Nothing at all in the period: say what makes figures appear.
    const empty =
      data.figures.pageviews.value === 0 && state.filters.length === 0
        ? h(
            "p",
            { class: "notice" },
            "No visits in this period yet. Once the tracking snippet from the ",
            h("a", { href: "/websites", text: "Websites page" }),
            ` is in the <head> of ${data.website.domain}'s pages, visits appear here within seconds.`,
          )
        : "";
    body.replaceChildren(
      // What every row's value does when pressed, said once for all of them.
      h("p", { id: "filter-hint", hidden: true, text: "Filters the whole page by this value." }),
      empty,
      figures,
      seriesChart(data.series),
      h("div", { class: "grid two" }, breakdowns),
      h("div", { class: "grid two" }, goalsSection({ rows: data.goals, goals, websiteId: id, filterBy, reload: () => load() }), h(
          "div",
          {},
          customEventsSection(data.custom_events, filterBy),
          propertiesSection({
            props,
            filterBy,
            // The picker is drawn anew with the values: focus stays on it, so that its arrow keys
            // step through the properties.
            pick: async (property) => {
              state.property = property;
              try {
                await load();
              } catch (error) {
                return unloaded(error);
              }
              document.getElementById("property-pick")?.focus();
            },
          }),
        ),
      ),
    );
  };
  // The filters asked for, each a button that removes it (the page holds one per dimension).
  const drawChips = () =>
    chips.replaceChildren(
      ...state.filters.map(([dimension, value, title], i) =>
        h("button", {
          type: "button",
          class: "chip",
          "data-dimension": dimension,
          text: `Remove filter: ${title} is ${value}`,
          onclick: () => {
            state.filters = state.filters.filter(([d]) => d !== dimension);
            refilter(state.filters[Math.min(i, state.filters.length - 1)]?.[0]);
          },
        }),
      ),
    );
  // A view that cannot be loaded says so where its figures go, with a way to ask again; the
  // picker and the filters asked for stay, to choose another. Focus lost with the figures goes to
  // "Try again", and from there, once it worked, to the picker.
  const unloaded = (error) => {
    const lost = focusLost() || body.contains(document.activeElement);
    const again = h("button", {
      type: "button",
      text: "Try again",
      onclick: () =>
        load()
          .then(() => period.focus())
          .catch(unloaded),
    });
    drawChips();
    body.replaceChildren(h("div", { class: "card" }, h("p", { class: "error", role: "alert", text: `Could not load these statistics: ${error.message}` }), again));
    if (lost) again.focus();
  };
  // The button pressed to add or remove a filter goes with the redraw: focus moves to the chip of
  // the filter `dimension` (the one added, or the next one left), else to the period picker.
  const refilter = async (dimension) => {
    try {
      await load();
    } catch (error) {
      return unloaded(error);
    }
    const chip = [...chips.children].find((c) => c.dataset.dimension === dimension);
    (chip ?? period).focus();
  };
  period.addEventListener("change", () => {
    // A custom range applies once its two days are chosen.
    // Focus stays on the picker (arrow keys step through it): the days follow it in the tab order.
    range.hidden = period.value !== "custom";
    if (period.value === "custom") return;
    state.period = period.value;
    load().catch(unloaded);
  });
  // The picker and the custom range show the view the address holds.
  const showChoice = () => {
    period.value = state.period;
    range.hidden = state.period !== "custom";
    if (state.period === "custom") {
      const [first, last] = state.date.split(",");
      range.querySelector('input[name="from"]').value = first;
      range.querySelector('input[name="to"]').value = last;
    }
  };
  window.addEventListener("popstate", () => {
    Object.assign(state, viewOfAddress(location.search), { property: undefined });
    showChoice();
    // Focus left on a control the redraw hid or removed goes back to the period picker.
    load()
      .then(() => focusLost() && period.focus())
      .catch(unloaded);
  });
  // The address written as the page would write it, so that the first view drawn is not a second
  // entry in the history.
  history.replaceState(null, "", addressOfView(state));
  showChoice();
  await load();
  show(h("div", { class: "toolbar" }, field("Period", "period-field", period), range, now), chips, body);
  // Visitors right now, without reloading the page.
  setInterval(async () => {
    try {
      const data = await api("GET", `/websites/${encodeURIComponent(id)}/realtime`);
      now.textContent = rightNow(data.visitors);
    } catch {
      // The next refresh tries again.
    }
  }, 30_000);
}

const pages = {
  login: authPage,
  signup: authPage,
  websites: websitesPage,
  website: websitePage,
  "api-keys": apiKeysPage,
  teams: teamsPage,
  team: teamPage,
  "connected-apps": connectedAppsPage,
  password: () => passwordPage(),
};

logoutButton();
const run = pages[page];
if (run) {
  Promise.resolve()
    .then(() => run())
    .catch(failed);
}
