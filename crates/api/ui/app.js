// calbridge admin console. Plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Every page reads and writes through calbridge's REST API (the same handlers API keys use),
// authenticated by the session cookie that POST /ui/login sets; every request that changes
// something carries the session's CSRF token in X-CSRF-Token. Text from the server is put into
// the page as text nodes only (never as HTML). The sync-health page polls /sync/status every
// few seconds while it is open.
"use strict";

const POLL_MS = 3000;
let session = null; // {username, csrf_token, sync_interval_secs, kinds}
let poller = null;

// ---------------------------------------------------------------------------------------
// Helpers

/** Builds an element: h("td", {class: "x", onclick: f}, "text", child, ...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel, root) => (root || document).querySelector(sel);
const main = () => $("#main");

function toast(text, bad) {
  const box = $("#toast");
  const msg = h("div", { class: bad ? "msg bad" : "msg" }, text);
  box.append(msg);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => msg.remove(), bad ? 9000 : 4000);
}

class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem.errors || []).map((e) => `${e.field}: ${e.message}`);
    super(fields.length > 1 ? fields.join("; ") : problem.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Calls the API; answers the parsed JSON (or null); throws ApiError with the problem's detail. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf_token;
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && path !== "/ui/login") {
    session = null;
    showLogin("Your session has ended; sign in again.");
    throw new ApiError(401, { detail: "signed out" });
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data || {});
  return data;
}

/** Runs an action from a button: disables it meanwhile, reports failures. */
async function busy(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) toast(e.message, true);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

const pad = (n) => String(n).padStart(2, "0");
const dateInput = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const timeText = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
const when = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "—");
function ago(iso) {
  if (!iso) return "never";
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return when(iso);
}
/** A wait in milliseconds, as people read it: "—" for none, "850 ms", "2.0 s", "3 min 20 s". */
function waitText(ms) {
  if (!ms) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}
function localDate(dateText, timeTextValue) {
  const [y, m, d] = dateText.split("-").map(Number);
  const [hh, mm] = (timeTextValue || "00:00").split(":").map(Number);
  return new Date(y, m - 1, d, hh, mm);
}
function field(label, input, hint) {
  return h("label", {}, label, hint ? h("span", { class: "hint" }, ` (${hint})`) : null, input);
}
function linkState(v) {
  const state = v.state === "unverified" ? "pending" : v.state;
  const mark = state === "verified" ? "✓ " : state === "failed" ? "✗ " : "… ";
  return h("span", {}, h("span", { class: `badge ${state}` }, mark + state), v.error ? h("div", { class: "small error" }, v.error) : null);
}

// ---------------------------------------------------------------------------------------
// Sign-in

function showLogin(message) {
  stopPolling();
  $("#topbar").hidden = true;
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        error.textContent = "";
        submit.disabled = true;
        try {
          session = await api("POST", "/ui/login", { username: user.value, password: pass.value });
          pass.value = "";
          startApp();
        } catch (e) {
          error.textContent = e.message;
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("label", { for: "username" }, "User name"),
    user,
    h("label", { for: "password" }, "Password"),
    pass,
    error,
    submit,
  );
  main().replaceChildren(
    h(
      "div",
      { class: "card narrow" },
      h("h1", {}, "Sign in to calbridge"),
      form,
      h("p", { class: "muted small" }, "Administrators are created on the server with calbridge admin create --username NAME."),
    ),
  );
  user.focus();
}

async function logout() {
  try {
    await api("POST", "/ui/logout");
  } catch (_) {
    // signed out either way
  }
  session = null;
  showLogin("Signed out.");
}

function startApp() {
  $("#topbar").hidden = false;
  $("#who").textContent = session.username;
  if (!location.hash || location.hash === "#/" || location.hash === "#") location.hash = "#/connections";
  else route();
}

// ---------------------------------------------------------------------------------------
// Pages

const pages = { connections: connectionsPage, calendars: calendarsPage, planner: plannerPage, sync: syncPage };

function stopPolling() {
  if (poller) clearInterval(poller);
  poller = null;
}

/** On narrow screens tables show as cards: each cell is labelled with its column's heading. */
function labelCells(root) {
  for (const table of root.querySelectorAll("table:not(.week)")) {
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    table.classList.add("stack");
    for (const row of table.querySelectorAll("tbody tr")) {
      [...row.children].forEach((cell, i) => {
        if (heads[i]) cell.dataset.label = heads[i];
      });
    }
  }
}

new MutationObserver(() => labelCells(main())).observe(document.documentElement, { childList: true, subtree: true });

async function route() {
  if (!session) return;
  stopPolling();
  const name = (location.hash.replace(/^#\//, "").split("?")[0] || "connections").split("/")[0];
  const page = pages[name] || connectionsPage;
  for (const a of document.querySelectorAll(".top nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    await page();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) main().replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
  }
}

/** Loads what most pages need at once. */
async function loadAll() {
  const [connections, sites, calendars, statuses] = await Promise.all([
    api("GET", "/connections"),
    api("GET", "/sites"),
    api("GET", "/calendars"),
    api("GET", "/sync/status"),
  ]);
  return { connections, sites, calendars, statuses };
}

// --- Exchange servers --------------------------------------------------------------------

async function connectionsPage() {
  const { connections, calendars, statuses } = await loadAll();
  const panel = h("div", { id: "connection-panel" });
  const rows = connections.map((c) => {
    const cals = calendars.filter((k) => k.connection_id === c.id);
    const runs = statuses.filter((s) => cals.some((k) => k.id === s.calendar_id));
    const last = runs.map((s) => s.last_run).sort().pop();
    const failed = runs.filter((s) => s.state !== "ok");
    const throttled = runs.filter((s) => s.throttled_ms > 0);
    const waited = throttled.reduce((sum, s) => sum + s.throttled_ms, 0);
    const endpoint = c.settings.kind === "graph" ? `tenant ${c.settings.tenant_id}` : c.settings.url;
    return h(
      "tr",
      { "data-connection": c.name },
      h("td", {}, h("strong", {}, c.name), h("div", { class: "small muted" }, endpoint)),
      h("td", {}, c.settings.kind === "graph" ? "Graph" : "EWS"),
      h("td", { class: "hide-narrow" }, c.secret_set ? h("span", { class: "badge ok" }, "set") : h("span", { class: "badge bad" }, "not set")),
      h("td", {}, String(cals.length)),
      h("td", {}, ago(last)),
      h("td", {}, failed.length ? h("span", { class: "badge failed" }, `${failed.length} failing`) : h("span", { class: "badge ok" }, "none")),
      h(
        "td",
        { "data-throttled-ms": String(waited) },
        waited ? h("span", { class: "warn" }, waitText(waited)) : "none",
        throttled.length ? h("div", { class: "small muted" }, `${throttled.length} of ${runs.length} calendars waited`) : null,
      ),
      h(
        "td",
        {},
        h(
          "div",
          { class: "row-actions" },
          h("button", { type: "button", onclick: (ev) => testConnection(ev.currentTarget, c, panel) }, "Test connection"),
          h("button", { type: "button", class: "secondary", onclick: () => connectionForm(panel, c) }, "Edit"),
          h("button", { type: "button", class: "secondary", onclick: (ev) => syncConnection(ev.currentTarget, c) }, "Sync now"),
        ),
      ),
    );
  });
  main().replaceChildren(
    h("h1", {}, "Exchange servers"),
    h("p", { class: "muted" }, "Each connection is an Exchange organisation calbridge talks to. Secrets are write-only: the page shows only whether one is set."),
    connections.length
      ? h(
          "div",
          { class: "scroll" },
          h(
            "table",
            {},
            h("thead", {}, h("tr", {}, ["Connection", "Kind", "Secret", "Calendars", "Last sync", "Errors", "Throttling waits", "Actions"].map((t, i) => h("th", { class: i === 2 ? "hide-narrow" : null, scope: "col" }, t)))),
            h("tbody", {}, rows),
          ),
        )
      : h("p", { class: "card" }, "No connection yet. Add one below."),
    h("div", { class: "actions" }, h("button", { type: "button", id: "add-connection", onclick: () => connectionForm(panel, null) }, "Add connection")),
    panel,
  );
}

async function syncConnection(button, c) {
  await busy(button, async () => {
    const runs = await api("POST", `/connections/${c.id}/sync`);
    const failed = runs.filter((r) => r.state !== "ok").length;
    toast(`${c.name}: ${runs.length} calendars synced${failed ? `, ${failed} failed (see Sync health)` : ""}`, failed > 0);
    await route();
  });
}

async function testConnection(button, c, panel) {
  await busy(button, async () => {
    panel.replaceChildren(h("p", {}, `Testing ${c.name}…`));
    const d = await api("POST", `/connections/${c.id}/test`);
    const list = h(
      "ul",
      { class: "checks" },
      d.checks.map((k) =>
        h(
          "li",
          { "data-check": k.name },
          h("span", { class: `badge ${k.result === "skip" ? "skip-result" : k.result}` }, k.result),
          " ",
          h("strong", {}, k.name),
          ": ",
          k.detail,
          k.hint ? h("span", { class: "hint" }, `Fix: ${k.hint}`) : null,
        ),
      ),
    );
    panel.replaceChildren(
      h(
        "section",
        { class: "card", "aria-labelledby": "test-title" },
        h("h2", { id: "test-title", tabindex: "-1" }, `Test of ${c.name}: `, h("span", { class: d.ok ? "ok" : "bad", id: "test-outcome" }, d.ok ? "all checks passed" : "a check failed")),
        list,
      ),
    );
    $("#test-title").focus();
  });
}

const EWS_VERSIONS = ["Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2", "Exchange2013", "Exchange2013_SP1", "Exchange2016"];

function connectionForm(panel, c) {
  const s = c ? c.settings : { kind: "graph" };
  const val = (v) => (v === undefined || v === null ? "" : v);
  const inp = (id, value, attrs) => h("input", Object.assign({ id, name: id, value: val(value) }, attrs || {}));
  const kind = h("select", { id: "kind", name: "kind", disabled: !!c }, h("option", { value: "graph" }, "Microsoft Graph (Exchange Online)"), h("option", { value: "ews" }, "EWS (Exchange Server)"));
  kind.value = s.kind;
  const f = {
    name: inp("name", c && c.name, { required: true }),
    tenant_id: inp("tenant_id", s.tenant_id),
    client_id: inp("client_id", s.client_id),
    authority_url: inp("authority_url", s.authority_url, { placeholder: "https://login.microsoftonline.com" }),
    graph_url: inp("graph_url", s.graph_url, { placeholder: "https://graph.microsoft.com" }),
    url: inp("url", s.url, { placeholder: "https://mail.contoso.com/EWS/Exchange.asmx" }),
    auth: h("select", { id: "auth", name: "auth" }, ["ntlm", "basic", "oauth2"].map((a) => h("option", { value: a }, a))),
    version: h("select", { id: "version", name: "version" }, EWS_VERSIONS.map((v) => h("option", { value: v }, v))),
    username: inp("username_ews", s.username, { placeholder: "CONTOSO\\svc-calbridge" }),
    impersonation: h("input", { id: "impersonation", type: "checkbox", checked: s.impersonation !== false }),
    max_connections: inp("max_connections", s.max_connections, { type: "number", min: 1, max: 256, placeholder: "27" }),
    test_mailbox: inp("test_mailbox", s.test_mailbox, { type: "email", placeholder: "svc-test@contoso.com" }),
    secret: inp("secret", "", { type: "password", autocomplete: "new-password" }),
    default_organizer: inp("default_organizer", c && c.default_organizer, { type: "email", placeholder: "scheduler@contoso.com" }),
    max_threads: inp("max_threads", c ? c.max_threads : 4, { type: "number", min: 1, max: 64 }),
  };
  f.auth.value = s.auth || "ntlm";
  f.version.value = s.version || "Exchange2016";
  const graphBox = h("fieldset", {}, h("legend", {}, "Microsoft Graph"), field("Tenant id or domain", f.tenant_id), field("Client id", f.client_id), field("Authority URL", f.authority_url, "optional"), field("Graph URL", f.graph_url, "optional"));
  const oauthOnly = [field("Tenant id or domain", f.tenant_id), field("Client id", f.client_id), field("Authority URL", f.authority_url, "optional")];
  const ewsBox = h(
    "fieldset",
    {},
    h("legend", {}, "EWS"),
    field("EWS URL", f.url),
    field("Server version", f.version),
    field("Authentication", f.auth),
    field("Service account", f.username, "basic and ntlm"),
    h("label", { class: "check" }, f.impersonation, "Impersonation (ApplicationImpersonation role)"),
    field("Max connections to the server", f.max_connections, "default 27"),
    field("Test mailbox", f.test_mailbox, "optional; the connection test opens it first, before anything is linked"),
  );
  const oauthBox = h("div", {});
  const secretState = c ? (c.secret_set ? "set — leave empty to keep it" : "not set") : "required";
  const form = h(
    "form",
    { class: "grid", id: "connection-form", "aria-labelledby": "form-title" },
    h("h2", { id: "form-title", class: "actions", tabindex: "-1" }, c ? `Edit ${c.name}` : "New connection"),
    field("Name", f.name),
    field("Kind", kind),
    graphBox,
    ewsBox,
    field("Secret (client secret or service account password)", f.secret, secretState),
    field("Default organizer", f.default_organizer, "account that organises bookings; link it as a person"),
    field("Max threads", f.max_threads, "requests to Exchange at once"),
    h("p", { class: "small muted actions" }, "The test opens the test mailbox (EWS) first, then the default organizer and one linked mailbox of each kind."),
    h("div", { class: "actions" }, h("button", { type: "submit" }, c ? "Save" : "Create connection"), h("button", { type: "button", class: "secondary", onclick: () => panel.replaceChildren() }, "Cancel")),
  );
  const refresh = () => {
    const ews = kind.value === "ews";
    graphBox.hidden = ews;
    ewsBox.hidden = !ews;
    if (ews && f.auth.value === "oauth2") {
      oauthBox.replaceChildren(...oauthOnly);
      ewsBox.append(oauthBox);
      graphBox.replaceChildren(h("legend", {}, "Microsoft Graph"));
    } else if (!ews) {
      graphBox.replaceChildren(h("legend", {}, "Microsoft Graph"), field("Tenant id or domain", f.tenant_id), field("Client id", f.client_id), field("Authority URL", f.authority_url, "optional"), field("Graph URL", f.graph_url, "optional"));
    } else {
      oauthBox.replaceChildren();
    }
    f.username.closest("label").hidden = ews && f.auth.value === "oauth2";
  };
  kind.addEventListener("change", refresh);
  f.auth.addEventListener("change", refresh);
  refresh();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const opt = (el) => (el.value.trim() === "" ? undefined : el.value.trim());
    let settings;
    if (kind.value === "graph") {
      settings = { kind: "graph", tenant_id: f.tenant_id.value.trim(), client_id: f.client_id.value.trim(), authority_url: opt(f.authority_url), graph_url: opt(f.graph_url) };
    } else {
      const oauth = f.auth.value === "oauth2";
      settings = {
        kind: "ews",
        url: f.url.value.trim(),
        auth: f.auth.value,
        version: f.version.value,
        username: oauth ? undefined : opt(f.username),
        impersonation: f.impersonation.checked,
        tenant_id: oauth ? opt(f.tenant_id) : undefined,
        client_id: oauth ? opt(f.client_id) : undefined,
        authority_url: oauth ? opt(f.authority_url) : undefined,
        max_connections: f.max_connections.value ? Number(f.max_connections.value) : undefined,
        test_mailbox: opt(f.test_mailbox),
      };
    }
    const body = {
      name: f.name.value.trim(),
      settings,
      secret: f.secret.value === "" ? undefined : f.secret.value,
      default_organizer: opt(f.default_organizer),
      max_threads: Number(f.max_threads.value || 4),
    };
    await busy(form.querySelector("button[type=submit]"), async () => {
      const saved = c ? await api("PUT", `/connections/${c.id}`, body) : await api("POST", "/connections", body);
      toast(`Connection ${saved.name} saved`);
      await route();
    });
  });
  panel.replaceChildren(h("div", { class: "card" }, form));
  $("#form-title").focus();
}

// --- Calendars ----------------------------------------------------------------------------

async function calendarsPage() {
  const { connections, sites, calendars } = await loadAll();
  const connName = (id) => (connections.find((c) => c.id === id) || { name: `#${id}` }).name;
  const siteName = (id) => (sites.find((s) => s.id === id) || { name: "" }).name;
  const kinds = [
    ["room", "Rooms"],
    ["equipment", "Equipment"],
    ["person", "People"],
  ];
  const tables = kinds.map(([kind, title]) => {
    const list = calendars.filter((c) => c.kind === kind);
    return h(
      "section",
      { "aria-label": title },
      h("h2", {}, `${title} (${list.length})`),
      list.length
        ? h(
            "div",
            { class: "scroll" },
            h(
              "table",
              {},
              h("thead", {}, h("tr", {}, ["Name", "Mailbox", "Site / connection", "Link", "Busy only", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
              h(
                "tbody",
                {},
                list.map((c) =>
                  h(
                    "tr",
                    { "data-calendar": c.email },
                    h("td", {}, c.display_name),
                    h("td", {}, c.email),
                    h("td", {}, c.site_id ? `${siteName(c.site_id)} · ` : "", connName(c.connection_id)),
                    h("td", {}, linkState(c.verification)),
                    h(
                      "td",
                      {},
                      h("label", { class: "check" }, h("input", { type: "checkbox", checked: c.busy_only, "aria-label": `Busy only for ${c.display_name}`, onchange: (ev) => setBusyOnly(ev.currentTarget, c) }), "busy only"),
                    ),
                    h(
                      "td",
                      {},
                      h(
                        "div",
                        { class: "row-actions" },
                        h("button", { type: "button", class: "secondary", onclick: (ev) => busy(ev.currentTarget, async () => { await api("POST", `/calendars/${c.id}/verify`); await route(); }) }, "Verify"),
                        h("button", { type: "button", class: "danger", onclick: (ev) => unlink(ev.currentTarget, c) }, "Unlink"),
                      ),
                    ),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, `No ${title.toLowerCase()} linked.`),
    );
  });

  // Link form
  const email = h("input", { id: "link-email", type: "email", required: true, placeholder: "room-2.14@contoso.com" });
  const kind = h("select", { id: "link-kind" }, kinds.map(([k]) => h("option", { value: k }, k)));
  const name = h("input", { id: "link-name", placeholder: "Room 2.14 (24 seats)" });
  const where = h(
    "select",
    { id: "link-where", required: true },
    sites.map((s) => h("option", { value: `site:${s.id}` }, `Site ${s.name}`)),
    connections.map((c) => h("option", { value: `conn:${c.id}` }, `Connection ${c.name}`)),
  );
  const busyOnly = h("input", { id: "link-busy", type: "checkbox" });
  const linkForm = h(
    "form",
    { class: "grid", id: "link-form" },
    field("Mailbox address", email),
    field("Kind", kind),
    field("Display name", name, "optional"),
    field("Belongs to", where),
    h("label", { class: "check" }, busyOnly, "Show its Exchange events as busy only"),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Link and verify")),
  );
  linkForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const [k, id] = where.value.split(":");
    const body = { email: email.value.trim(), kind: kind.value, busy_only: busyOnly.checked };
    if (name.value.trim()) body.display_name = name.value.trim();
    body[k === "site" ? "site_id" : "connection_id"] = Number(id);
    await busy(linkForm.querySelector("button"), async () => {
      const c = await api("POST", "/calendars", body);
      const v = c.verification;
      toast(v.state === "verified" ? `${c.email} linked and verified` : `${c.email} linked; verification ${v.state}: ${v.error || ""}`, v.state === "failed");
      await route();
    });
  });

  // Sites and import
  const siteName_ = h("input", { id: "site-name", required: true, placeholder: "Training centre North" });
  const siteConn = h("select", { id: "site-connection" }, connections.map((c) => h("option", { value: c.id }, c.name)));
  const siteForm = h("form", { class: "grid", id: "site-form" }, field("Site name", siteName_), field("Connection", siteConn), h("div", { class: "actions" }, h("button", { type: "submit" }, "Create site")));
  siteForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await busy(siteForm.querySelector("button"), async () => {
      await api("POST", "/sites", { name: siteName_.value.trim(), connection_id: Number(siteConn.value) });
      toast(`Site ${siteName_.value.trim()} created`);
      await route();
    });
  });
  const importConn = h("select", { id: "import-connection" }, connections.map((c) => h("option", { value: c.id }, c.name)));
  const importForm = h("form", { class: "grid", id: "import-form" }, field("Connection", importConn), h("div", { class: "actions" }, h("button", { type: "submit" }, "Import rooms from Exchange")));
  importForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await busy(importForm.querySelector("button"), async () => {
      const r = await api("POST", `/connections/${importConn.value}/rooms/import`, {});
      toast(`${r.linked.length} rooms linked, ${r.existing.length} already linked, ${r.sites_created.length} sites created`);
      await route();
    });
  });

  main().replaceChildren(
    h("h1", {}, "Calendars"),
    h("p", { class: "muted" }, "People, rooms and equipment linked to their Exchange mailboxes. A link is verified against Exchange; a failed one says why."),
    connections.length ? h("section", { class: "card", "aria-labelledby": "link-title" }, h("h2", { id: "link-title" }, "Link a mailbox"), linkForm) : h("p", { class: "card" }, "Add an Exchange connection first."),
    ...tables,
    h("h2", {}, `Sites (${sites.length})`),
    sites.length ? h("ul", {}, sites.map((s) => h("li", {}, `${s.name} — connection ${connName(s.connection_id)}`))) : h("p", { class: "muted" }, "No sites."),
    connections.length ? h("div", { class: "card" }, siteForm) : null,
    connections.length ? h("section", { class: "card", "aria-labelledby": "import-title" }, h("h2", { id: "import-title" }, "Import rooms"), h("p", { class: "small muted" }, "Links every room Exchange lists (room lists become sites). New rooms are verified by their first sync."), importForm) : null,
  );
}

async function setBusyOnly(box, c) {
  await busy(box, async () => {
    await api("PUT", `/calendars/${c.id}`, { email: c.email, kind: c.kind, display_name: c.display_name, busy_only: box.checked });
    toast(`${c.display_name}: ${box.checked ? "busy only" : "full details"}`);
  });
}

async function unlink(button, c) {
  if (!confirm(`Unlink ${c.email}? Its events leave calbridge; Exchange keeps them.`)) return;
  await busy(button, async () => {
    await api("DELETE", `/calendars/${c.id}`);
    toast(`${c.email} unlinked`);
    await route();
  });
}

// --- Planner -------------------------------------------------------------------------------

const planner = { chosen: null, date: dateInput(new Date()), view: "day", duration: 60, lastBooking: null };
const DAY_START = 7;
const DAY_END = 20;
const HOUR_PX = 44;

function responseState(r) {
  if (r === "accepted") return "accepted";
  if (r === "declined") return "declined";
  return "pending";
}

async function plannerPage() {
  const { connections, calendars } = await loadAll();
  if (planner.chosen === null) planner.chosen = calendars.filter((c) => c.kind !== "person").slice(0, 3).map((c) => c.id);
  const organizers = connections.map((c) => c.default_organizer).filter(Boolean);
  const people = calendars.filter((c) => c.kind === "person");
  const picker = h(
    "fieldset",
    {},
    h("legend", {}, "Show calendars"),
    h(
      "div",
      { class: "picker" },
      calendars.map((c) =>
        h("label", { class: "check" }, h("input", { type: "checkbox", value: c.id, checked: planner.chosen.includes(c.id), "data-email": c.email, onchange: (ev) => { const id = c.id; planner.chosen = ev.currentTarget.checked ? [...planner.chosen, id] : planner.chosen.filter((x) => x !== id); drawPlanner(calendars, organizers); } }), `${c.display_name} (${c.kind})`),
      ),
    ),
  );
  const date = h("input", { id: "planner-date", type: "date", value: planner.date, onchange: (ev) => { planner.date = ev.currentTarget.value; drawPlanner(calendars, organizers); } });
  const view = h("select", { id: "planner-view", onchange: (ev) => { planner.view = ev.currentTarget.value; drawPlanner(calendars, organizers); } }, h("option", { value: "day" }, "Day"), h("option", { value: "week" }, "Week"));
  view.value = planner.view;
  const duration = h("select", { id: "planner-duration", onchange: (ev) => { planner.duration = Number(ev.currentTarget.value); drawPlanner(calendars, organizers); } }, [30, 60, 90, 120].map((m) => h("option", { value: m }, `${m} min`)));
  duration.value = String(planner.duration);
  const step = (days) => {
    const d = localDate(planner.date);
    d.setDate(d.getDate() + days);
    planner.date = dateInput(d);
    date.value = planner.date;
    drawPlanner(calendars, organizers);
  };
  main().replaceChildren(
    h("h1", {}, "Planner"),
    h(
      "div",
      { class: "toolbar" },
      field("Date", date),
      field("View", view),
      field("Slot length", duration),
      h("div", {}, h("button", { type: "button", class: "secondary", onclick: () => step(planner.view === "week" ? -7 : -1), "aria-label": "Earlier" }, "◀"), " ", h("button", { type: "button", class: "secondary", onclick: () => { planner.date = dateInput(new Date()); date.value = planner.date; drawPlanner(calendars, organizers); } }, "Today"), " ", h("button", { type: "button", class: "secondary", onclick: () => step(planner.view === "week" ? 7 : 1), "aria-label": "Later" }, "▶")),
    ),
    picker,
    h(
      "div",
      { class: "legend", "aria-label": "Legend" },
      h("span", { class: "chip" }, "local event"),
      h("span", { class: "chip exchange" }, "Exchange event (read-only)"),
      h("span", { class: "chip booking pending" }, "booking pending"),
      h("span", { class: "chip booking accepted" }, "booking accepted"),
      h("span", { class: "chip booking declined" }, "booking declined"),
    ),
    h("div", { id: "planner-grid", "aria-live": "polite" }),
    h("section", { "aria-labelledby": "slots-title" }, h("h2", { id: "slots-title" }, "Free slots"), h("div", { id: "planner-slots", class: "slots" })),
    h("section", { class: "card", "aria-labelledby": "book-title" }, h("h2", { id: "book-title", tabindex: "-1" }, "Book"), bookingForm(calendars, people, organizers), h("div", { id: "booking-status", role: "status" })),
  );
  await drawPlanner(calendars, organizers);
}

function rangeOf() {
  const from = localDate(planner.date);
  if (planner.view === "week") from.setDate(from.getDate() - ((from.getDay() + 6) % 7));
  const to = new Date(from);
  to.setDate(to.getDate() + (planner.view === "week" ? 7 : 1));
  return { from, to };
}

/** Events to draw per chosen calendar: its own, plus bookings of it made by organizers. */
async function plannerEvents(calendars, organizers) {
  const { from, to } = rangeOf();
  const q = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
  const chosen = calendars.filter((c) => planner.chosen.includes(c.id));
  const organizerCals = calendars.filter((c) => organizers.includes(c.email));
  const ids = [...new Set([...chosen, ...organizerCals].map((c) => c.id))];
  const lists = await Promise.all(ids.map((id) => api("GET", `/calendars/${id}/events?${q}`)));
  const byId = new Map(ids.map((id, i) => [id, lists[i]]));
  const bookings = organizerCals.flatMap((o) => byId.get(o.id).filter((e) => e.origin === "local"));
  return chosen.map((cal) => {
    const own = byId.get(cal.id);
    const mine = cal.kind === "person" ? [] : bookings.flatMap((b) => b.attendees.filter((a) => a.role === "resource" && a.email === cal.email).map((a) => Object.assign({}, b, { booking: responseState(a.response) })));
    // A booking the resource accepted is in its Exchange calendar too: show it once.
    const shown = own.filter((e) => !(e.origin === "exchange" && mine.some((b) => b.booking === "accepted" && b.start === e.start && b.end === e.end)));
    return { cal, events: [...shown, ...mine].sort((a, b) => a.start.localeCompare(b.start)) };
  });
}

function eventLabel(e) {
  const t = `${timeText(new Date(e.start))}–${timeText(new Date(e.end))}`;
  const state = e.booking ? ` · ${e.booking}` : e.read_only ? " · Exchange, read-only" : "";
  return { t, text: `${e.subject || "(no subject)"}${state}` };
}

function eventClass(e) {
  return e.booking ? `booking ${e.booking}` : e.origin === "exchange" ? "exchange" : "local";
}

async function drawPlanner(calendars, organizers) {
  const grid = $("#planner-grid");
  if (!grid) return;
  if (!planner.chosen.length) {
    grid.replaceChildren(h("p", { class: "muted" }, "Choose calendars to show."));
    $("#planner-slots").replaceChildren();
    return;
  }
  const cols = await plannerEvents(calendars, organizers);
  const { from } = rangeOf();
  if (planner.view === "day") {
    const height = (DAY_END - DAY_START) * HOUR_PX;
    const hours = h("div", { class: "col hours" }, h("div", { class: "head" }, ""), h("div", { class: "body" }));
    hours.lastChild.style.height = `${height}px`;
    for (let hr = DAY_START; hr < DAY_END; hr++) {
      const line = h("div", { class: "hour" }, `${pad(hr)}:00`);
      line.style.top = `${(hr - DAY_START) * HOUR_PX}px`;
      hours.lastChild.append(line);
    }
    const columns = cols.map(({ cal, events }) => {
      const body = h("div", { class: "body" });
      body.style.height = `${height}px`;
      for (let hr = DAY_START; hr < DAY_END; hr++) {
        const line = h("div", { class: "hour" });
        line.style.top = `${(hr - DAY_START) * HOUR_PX}px`;
        body.append(line);
      }
      // Overlapping events share the column's width: each takes the first free lane.
      const lanes = [];
      const placed = events.map((e) => {
        let lane = lanes.findIndex((end) => end <= e.start);
        if (lane < 0) lane = lanes.push("") - 1;
        lanes[lane] = e.end;
        return lane;
      });
      const width = 100 / Math.max(lanes.length, 1);
      for (const [i, e] of events.entries()) {
        const s = new Date(e.start);
        const en = new Date(e.end);
        const top = ((s - from) / 3600000 - DAY_START) * HOUR_PX;
        const bottom = ((en - from) / 3600000 - DAY_START) * HOUR_PX;
        if (bottom <= 0 || top >= height) continue;
        const { t, text } = eventLabel(e);
        const box = h("div", { class: `ev ${eventClass(e)}`, tabindex: 0, title: `${t} ${text}`, "data-subject": e.subject, "data-state": e.booking || e.origin }, h("span", { class: "t" }, t), " ", text);
        box.style.top = `${Math.max(top, 0)}px`;
        box.style.left = `calc(${placed[i] * width}% + 2px)`;
        box.style.width = `calc(${width}% - 4px)`;
        box.style.height = `${Math.max(Math.min(bottom, height) - Math.max(top, 0), 16)}px`;
        body.append(box);
      }
      return h("div", { class: "col", "data-calendar": cal.email }, h("div", { class: "head", title: cal.email }, cal.display_name, cal.busy_only ? " (busy only)" : ""), body);
    });
    const view = h("div", { class: "dayview", role: "region", "aria-label": `Day of ${planner.date}` }, hours, columns);
    view.style.gridTemplateColumns = `3.2rem repeat(${columns.length}, minmax(10rem, 1fr))`;
    grid.replaceChildren(view);
  } else {
    const days = [...Array(7).keys()].map((i) => {
      const d = new Date(from);
      d.setDate(d.getDate() + i);
      return d;
    });
    grid.replaceChildren(
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "week" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Calendar"), days.map((d) => h("th", { scope: "col" }, d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" }))))),
          h(
            "tbody",
            {},
            cols.map(({ cal, events }) =>
              h(
                "tr",
                { "data-calendar": cal.email },
                h("th", { scope: "row" }, cal.display_name),
                days.map((d) => {
                  const next = new Date(d);
                  next.setDate(next.getDate() + 1);
                  const list = events.filter((e) => new Date(e.start) < next && new Date(e.end) > d);
                  return h("td", {}, list.map((e) => { const { t, text } = eventLabel(e); return h("span", { class: `chip ${eventClass(e)}`, "data-subject": e.subject, "data-state": e.booking || e.origin }, `${t} ${text}`); }));
                }),
              ),
            ),
          ),
        ),
      ),
    );
  }
  await drawSlots(calendars);
}

async function drawSlots(calendars) {
  const box = $("#planner-slots");
  const chosen = calendars.filter((c) => planner.chosen.includes(c.id));
  const rooms = chosen.filter((c) => c.kind === "room").map((c) => c.id);
  const participants = chosen.filter((c) => c.kind !== "room").map((c) => c.id);
  const { from, to } = rangeOf();
  const dayFrom = new Date(from);
  dayFrom.setHours(DAY_START);
  const dayTo = new Date(to);
  dayTo.setDate(dayTo.getDate() - 1);
  dayTo.setHours(DAY_END);
  const start = new Date(Math.max(dayFrom.getTime(), Math.ceil(Date.now() / 1800000) * 1800000));
  if (start >= dayTo) {
    box.replaceChildren(h("p", { class: "muted" }, "No working hours left in this range."));
    return;
  }
  const r = await api("POST", "/availability/free-slots", { participants, rooms, duration_minutes: planner.duration, from: start.toISOString(), to: dayTo.toISOString(), step_minutes: 30, limit: 12 });
  const slots = r.slots.filter((s) => new Date(s.start).getHours() >= DAY_START && new Date(s.end).getHours() <= DAY_END);
  const name = (id) => (calendars.find((c) => c.id === id) || {}).display_name;
  box.replaceChildren(
    ...(slots.length
      ? slots.map((s) =>
          h(
            "button",
            { type: "button", "data-start": s.start, onclick: () => pickSlot(s) },
            `${planner.view === "week" ? new Date(s.start).toLocaleDateString([], { weekday: "short" }) + " " : ""}${timeText(new Date(s.start))}–${timeText(new Date(s.end))}`,
            s.rooms.length ? ` · ${s.rooms.map(name).join(", ")}` : "",
          ),
        )
      : [h("p", { class: "muted" }, "No free slot of this length in working hours.")]),
  );
}

function pickSlot(slot) {
  const s = new Date(slot.start);
  const e = new Date(slot.end);
  $("#book-date").value = dateInput(s);
  $("#book-start").value = timeText(s);
  $("#book-end").value = timeText(e);
  if (slot.rooms.length) $("#book-resource").value = String(slot.rooms[0]);
  $("#book-subject").focus();
}

function bookingForm(calendars, people, organizers) {
  const resources = calendars.filter((c) => c.kind !== "person");
  const subject = h("input", { id: "book-subject", required: true, placeholder: "Team meeting" });
  const date = h("input", { id: "book-date", type: "date", required: true, value: planner.date });
  const start = h("input", { id: "book-start", type: "time", required: true, value: "09:00" });
  const end = h("input", { id: "book-end", type: "time", required: true, value: "10:00" });
  const resource = h("select", { id: "book-resource" }, resources.map((c) => h("option", { value: c.id }, `${c.display_name} (${c.kind})`)));
  const preferred = resources.find((c) => planner.chosen.includes(c.id));
  if (preferred) resource.value = String(preferred.id);
  const organizer = h("select", { id: "book-organizer" }, people.map((c) => h("option", { value: c.id }, c.display_name + (organizers.includes(c.email) ? " (default organizer)" : ""))));
  const def = people.find((c) => organizers.includes(c.email));
  if (def) organizer.value = String(def.id);
  const form = h(
    "form",
    { class: "grid", id: "booking-form" },
    field("Subject", subject),
    field("Date", date),
    field("Start", start),
    field("End", end),
    field("Room or equipment", resource),
    field("Organizer", organizer, "a linked person"),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Book")),
  );
  if (!people.length || !resources.length) {
    return h("p", { class: "muted" }, "Link a person (the organizer) and a room or equipment to book.");
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const res = calendars.find((c) => String(c.id) === resource.value);
    const org = calendars.find((c) => String(c.id) === organizer.value);
    const body = {
      subject: subject.value.trim(),
      start: localDate(date.value, start.value).toISOString(),
      end: localDate(date.value, end.value).toISOString(),
      time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
      rooms: res.kind === "room" ? [res.email] : [],
      equipment: res.kind === "equipment" ? [res.email] : [],
    };
    const status = $("#booking-status");
    await busy(form.querySelector("button"), async () => {
      const e = await api("POST", `/calendars/${org.id}/events`, body);
      status.replaceChildren(h("p", {}, `“${e.subject}” in ${res.display_name}: `, h("span", { class: "badge pending", id: "booking-state" }, "pending"), " — sending to Exchange…"));
      // Push the meeting, let the resource answer, then read its answer back.
      for (const id of [org.id, res.id, org.id]) await api("POST", `/calendars/${id}/sync`);
      const after = await api("GET", `/events/${encodeURIComponent(e.id)}`);
      const a = after.attendees.find((x) => x.role === "resource" && x.email === res.email);
      const state = responseState(a ? a.response : "none");
      status.replaceChildren(h("p", {}, `“${e.subject}” in ${res.display_name}: `, h("span", { class: `badge ${state}`, id: "booking-state" }, state), state === "declined" ? " — the resource is taken at that time; pick a free slot." : state === "pending" ? " — waiting for the resource's answer (shown after the next sync)." : ""));
      toast(`Booking ${state}`, state === "declined");
      await drawPlanner(calendars, organizers);
    });
  });
  return form;
}

// --- Sync health ---------------------------------------------------------------------------

async function syncPage() {
  main().replaceChildren(
    h("h1", {}, "Sync health"),
    h("p", { class: "muted", id: "sync-note" }, ""),
    h("div", { id: "sync-table" }, h("p", {}, "Loading…")),
  );
  await drawSync();
  poller = setInterval(() => {
    if (document.visibilityState === "visible") drawSync().catch(() => {});
  }, POLL_MS);
}

async function drawSync() {
  const [calendars, statuses] = await Promise.all([api("GET", "/calendars"), api("GET", "/sync/status")]);
  const box = $("#sync-table");
  if (!box) return;
  const interval = session.sync_interval_secs;
  $("#sync-note").textContent = `Updates every ${POLL_MS / 1000} s without reloading. ${interval ? `Scheduled sync every ${interval} s.` : "Scheduled sync is off: calendars sync on request."}`;
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.sync : null;
  const rows = calendars.map((c) => {
    const s = statuses.find((x) => x.calendar_id === c.id);
    const next = s && interval ? new Date(new Date(s.last_run).getTime() + interval * 1000) : null;
    return h(
      "tr",
      { "data-calendar": c.email },
      h("td", {}, h("strong", {}, c.display_name), h("div", { class: "small muted" }, `${c.kind} · ${c.email}`)),
      h("td", {}, s ? h("span", { class: `badge ${s.state}` }, s.state) : h("span", { class: "badge pending" }, "not synced")),
      h("td", {}, s ? ago(s.last_run) : "never"),
      h("td", { class: "hide-narrow" }, next ? (next < new Date() ? "due now" : timeText(next)) : "on request"),
      h("td", {}, s ? `${s.pulled} pulled · ${s.pushed} pushed` : "—", s ? h("div", { class: "small muted" }, `${s.duration_ms} ms`) : null),
      h("td", { "data-throttled-ms": s ? String(s.throttled_ms) : null }, s && s.throttled_ms ? h("span", { class: "warn" }, waitText(s.throttled_ms)) : "—"),
      h("td", {}, s && s.error ? h("div", { class: "error small" }, s.error) : "—", s && s.hint ? h("div", { class: "small" }, `Fix: ${s.hint}`) : null),
      h("td", {}, h("button", { type: "button", class: "secondary", "data-sync": c.id, onclick: (ev) => busy(ev.currentTarget, async () => { const r = await api("POST", `/calendars/${c.id}/sync`); toast(`${c.display_name}: ${r.state}`, r.state !== "ok"); await drawSync(); }) }, "Sync now")),
    );
  });
  box.replaceChildren(
    calendars.length
      ? h(
          "div",
          { class: "scroll" },
          h(
            "table",
            {},
            h("thead", {}, h("tr", {}, ["Calendar", "State", "Last run", "Next run", "Changes", "Throttled", "Error", ""].map((t, i) => h("th", { scope: "col", class: i === 3 ? "hide-narrow" : null }, t)))),
            h("tbody", {}, rows),
          ),
        )
      : h("p", { class: "card" }, "No calendars linked yet."),
  );
  if (focused) {
    const again = box.querySelector(`[data-sync="${focused}"]`);
    if (again) again.focus();
  }
}

// ---------------------------------------------------------------------------------------
// Start

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", async () => {
  $("#logout").addEventListener("click", logout);
  try {
    session = await api("GET", "/ui/session");
    if (session) startApp();
    else showLogin();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showLogin(e.message);
  }
});
