// The Hookpost console: one ES module, no build step. Everything it shows from the API is put in
// the page as text (textContent, text nodes, form values), never parsed as markup, and links
// only ever point inside the console (`#/...`): stored data cannot become script or a link.
//
// The token lives in this tab's sessionStorage: sent only as an Authorization header (API
// Gateway's authorizer reads nothing else, and no cookie means no cross-site request can use
// it), gone when the tab closes, never in a URL. A portal link's one-time part arrives after
// `#`, is exchanged for the session's console token, and is wiped from the address bar.

const STORE = "hookpost.session";
const main = document.getElementById("main");
let timer = null;
let session = JSON.parse(sessionStorage.getItem(STORE) || "null");

// ---- DOM, as text only

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "href") {
      if (!String(value).startsWith("#/")) throw new Error("links stay inside the console");
      el.setAttribute("href", value);
    } else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = value;
    else el.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined));
}

function notice(text, error = false) {
  const box = h("div", { class: error ? "notice error" : "notice", role: "status" }, text);
  main.prepend(box);
  return box;
}

const json = (value) => h("pre", null, JSON.stringify(value, null, 2));
const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "—");
const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);

function badge(text, tone) {
  return h("span", { class: `badge ${tone || ""}` }, text);
}

const STATUS_TONE = {
  succeeded: "ok", failed: "bad", gave_up: "bad", expired: "bad", pending: "warn", in_flight: "warn",
  superseded: "muted",
};
const FINISHED = ["succeeded", "failed", "gave_up", "expired", "superseded"];

// ---- API

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// The admin token is refused on an application's own routes (403), so an admin opening one gets
// a key of the console's own for it (named "console"), kept for this tab and revoked at sign-out.
// It expires after 12 hours, so a tab closed without signing out leaves no key that works for
// long (cleanup deletes it a day later); one that answers 401 (expired, or revoked elsewhere) is
// replaced by a new one, made with the admin token, and the request sent again once.
const CONSOLE_KEY_TTL_S = 12 * 3600;
const makingKey = {};

// The application whose console key a request carries; null when it carries the session's token.
function consoleKeyApp(path) {
  const appRoute = /^applications\/([^/?]+)\/(?!api-keys)[^?]/.exec(path);
  return session.kind === "admin" && appRoute ? appRoute[1] : null;
}

async function consoleKey(appId) {
  if (session.kind !== "admin" || session.keys[appId]) return;
  // One request at a time per application: the screens' calls all wait for the same key.
  makingKey[appId] = makingKey[appId] || call("POST", `applications/${appId}/api-keys`,
    { name: "console", ttl_s: CONSOLE_KEY_TTL_S }).then((key) => {
    if (session && session.kind === "admin") {
      session.keys[appId] = { id: key.id, key: key.key };
      saveSession(session);
    }
  }).finally(() => { delete makingKey[appId]; });
  await makingKey[appId];
}

async function call(method, path, body, renewed = false) {
  const headers = { Accept: "application/json" };
  const keyApp = session ? consoleKeyApp(path) : null;
  if (keyApp) await consoleKey(keyApp);
  if (keyApp && !session) throw new ApiError(401, {});  // signed out meanwhile
  const used = keyApp ? session.keys[keyApp] : null;
  if (session) headers.Authorization = `Bearer ${used ? used.key : session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`v1/${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
  const data = response.status === 204 ? null : await response.json().catch(() => ({}));
  if (response.status === 401 && session && used && !renewed) {
    // The console key ran out: a new one (unless another request has made it already), then
    // this request again. The admin token refused there signs the tab out.
    if (session.keys[keyApp] && session.keys[keyApp].id === used.id) {
      delete session.keys[keyApp];
      saveSession(session);
    }
    return call(method, path, body, true);
  }
  if (response.status === 401 && session) {
    signOut("Your session has ended; sign in again.");
  }
  if (!response.ok) throw new ApiError(response.status, data || {});
  return data;
}

const app = (path = "") => `applications/${session.app_id}${path}`;
const q = (params) => {
  const entries = Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined);
  return entries.length ? `?${new URLSearchParams(entries)}` : "";
};

function problemText(error) {
  const fields = (error.problem && error.problem.errors) || [];
  return fields.length ? fields.map((f) => `${f.field}: ${f.message}`).join("; ") : error.message;
}

async function act(button, work, done) {
  button.disabled = true;
  try {
    const result = await work();
    if (done) done(result);
  } catch (error) {
    notice(problemText(error), true);
  } finally {
    button.disabled = false;
  }
}

// ---- Sign-in

function saveSession(value) {
  session = value;
  sessionStorage.setItem(STORE, JSON.stringify(value));
}

function signOut(message) {
  if (session && session.kind === "admin") {
    for (const [appId, key] of Object.entries(session.keys || {})) {
      call("DELETE", `applications/${appId}/api-keys/${key.id}`).catch(() => {});
    }
  }
  session = null;
  sessionStorage.removeItem(STORE);
  location.hash = "#/";
  route().then(() => message && notice(message, true));
}

async function exchangeLink() {
  const match = /^#link=(hppl_[\w-]+)$/.exec(location.hash);
  if (!match) return;
  history.replaceState(null, "", location.pathname + location.search + "#/");
  session = null;
  try {
    const portal = await call("POST", "portal/exchange", { link: match[1] });
    saveSession({ token: portal.token, kind: "portal", app_id: portal.application_id,
      labels: portal.labels });
  } catch (error) {
    sessionStorage.removeItem(STORE);
    show(signInForm());
    notice(`This portal link cannot be used: ${problemText(error)}`, true);
    throw error;
  }
}

function signInForm() {
  const token = h("input", { type: "password", name: "token", autocomplete: "off", required: "" });
  const appId = h("input", { name: "application", placeholder: "needed with an application key" });
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const value = token.value.trim();
      saveSession({ token: value, kind: "admin", keys: {} });
      try {
        if (value.startsWith("hp_") || value.startsWith("hpp_") || appId.value.trim()) {
          session.kind = value.startsWith("hpp_") ? "portal" : "key";
          session.app_id = appId.value.trim();
          await call("GET", app("/subscriptions?limit=1"));
        } else {
          await call("GET", "applications?limit=1");
        }
        saveSession(session);
        route();
      } catch (error) {
        session = null;
        sessionStorage.removeItem(STORE);
        notice(`Sign-in failed: ${problemText(error)}`, true);
      }
    },
  },
  h("label", null, "Admin token, application key (hp_…) or portal token (hpp_…)", token),
  h("label", null, "Application id", appId),
  h("button", { class: "primary", type: "submit" }, "Sign in"));
  return h("div", { class: "card signin" }, h("h1", null, "Sign in to Hookpost"), form,
    h("p", { class: "muted" }, "A portal link signs you in by itself."));
}

// ---- Frame: navigation and who is signed in

function frame(active) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!session) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const links = [];
  if (session.kind === "admin") links.push(["apps", "#/", "Applications"]);
  if (session.app_id) {
    const base = `#/apps/${session.app_id}`;
    if (session.kind !== "portal") links.push(["overview", base, "Overview"]);
    links.push(["subscriptions", `${base}/subscriptions`, "Endpoints"],
      ["events", `${base}/events`, "Events"], ["attempts", `${base}/attempts`, "Attempts"]);
  }
  nav.replaceChildren(...links.map(([key, href, text]) =>
    h("a", { href, class: key === active ? "on" : null }, text)));
  const label = session.kind === "portal"
    ? `Portal: ${Object.entries(session.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ")}`
    : session.kind === "admin" ? "Admin" : "Application key";
  who.replaceChildren(label, h("button", { onclick: () => signOut() }, "Sign out"));
}

// ---- Screens

async function applications() {
  frame("apps");
  const page = await call("GET", "applications?limit=200");
  show(h("h1", null, "Applications"), h("table", null,
    h("tr", null, h("th", null, "Name"), h("th", null, "Id"), h("th", null, "Created")),
    page.data.map((a) => h("tr", null,
      h("td", null, h("a", { href: `#/apps/${a.id}` }, a.name)),
      h("td", { class: "wrap" }, a.id), h("td", null, when(a.created_at))))));
}

function chart(title, series, rows, pick) {
  const holder = h("div", { class: "chart" });
  const x = rows.map((r) => Date.parse(r.start) / 1000);
  const data = [x, ...series.map((s) => rows.map((r) => pick(r, s.key)))];
  requestAnimationFrame(() => {
    const width = Math.max(300, holder.clientWidth || 520);
    // eslint-disable-next-line no-new, new-cap
    new window.uPlot({
      width, height: 220, title,
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.fill }))],
      axes: [{}, { size: 50 }],
    }, data, holder);
  });
  return holder;
}

async function overview(appId) {
  frame("overview");
  const [stats, pending] = await Promise.all([
    call("GET", app("/stats?granularity=hour")),
    call("GET", app("/attempts?status=pending&limit=200")),
  ]);
  const now = Date.now();
  const due = pending.data.filter((a) => Date.parse(a.due_at) <= now).length;
  const more = pending.next_cursor ? "+" : "";
  const total = (key) => stats.data.reduce((sum, b) => sum + b.attempts[key], 0);
  show(
    h("h1", null, "Overview"),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("div", { class: "muted" }, "Due backlog"),
        h("h2", { id: "backlog" }, `${due}${more}`),
        h("div", { class: "muted" }, `${pending.data.length}${more} pending in all`)),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Last 24 hours"),
        h("div", null, badge(`${total("succeeded")} succeeded`, "ok"),
          badge(`${total("failed")} failed`, "warn"), badge(`${total("gave_up")} gave up`, "bad")),
        h("div", { class: "muted" }, `statistics as of ${when(stats.refreshed_at)}`))),
    h("div", { class: "grid" },
      h("div", { class: "card" }, chart("Attempts per hour", [
        { key: "succeeded", label: "succeeded", color: "#12805c" },
        { key: "failed", label: "failed", color: "#b54708" },
        { key: "gave_up", label: "gave up", color: "#c01048" },
      ], stats.data, (r, k) => r.attempts[k])),
      h("div", { class: "card" }, chart("Latency (ms)", [
        { key: "p50", label: "p50", color: "#3553d1" },
        { key: "p95", label: "p95", color: "#7a5af8" },
      ], stats.data, (r, k) => r.latency_ms[k]))),
  );
}

function healthBadges(sub) {
  const health = sub.health;
  const tone = { closed: "ok", open: "bad", half_open: "warn" }[health.circuit];
  const badges = [badge(`circuit ${health.circuit.replace("_", " ")}`, tone)];
  if (!sub.enabled) badges.push(badge("disabled", "bad"));
  badges.push(badge(`success ${pct(health.recent.success_rate)}`,
    health.recent.success_rate === null ? "" : health.recent.success_rate >= 0.95 ? "ok" : "warn"));
  if (health.recent.p50_ms !== null) badges.push(badge(`p50 ${health.recent.p50_ms} ms`));
  if (health.paused_until) badges.push(badge(`paused until ${when(health.paused_until)}`, "warn"));
  if (health.paced_per_s !== null) badges.push(badge(`paced ${health.paced_per_s}/s`, "warn"));
  return h("span", { class: "health" }, badges);
}

async function subscriptions(appId) {
  frame("subscriptions");
  const page = await call("GET", app("/subscriptions?limit=200"));
  show(
    h("div", { class: "row heading" }, h("h1", null, "Endpoints"),
      h("a", { href: `#/apps/${appId}/subscriptions/new` }, "Add an endpoint")),
    h("table", { id: "subscriptions" },
      h("tr", null, ["URL", "Types", "Labels", "Health"].map((t) => h("th", null, t))),
      page.data.map((s) => h("tr", { "data-id": s.id },
        h("td", { class: "wrap" }, h("a", { href: `#/apps/${appId}/subscriptions/${s.id}` }, s.url),
          s.description ? h("div", { class: "muted" }, s.description) : null),
        h("td", null, s.event_types.join(", ")),
        h("td", { class: "wrap" }, Object.entries(s.labels).map(([k, v]) => badge(`${k}=${v}`))),
        h("td", null, healthBadges(s))))),
    page.data.length ? null : h("p", { class: "muted" }, "No endpoints yet."),
  );
  refreshIn(3000);
}

// "k=v" lines, or "k: v" for headers, to and from an object.
const toLines = (obj, sep) => Object.entries(obj || {}).map(([k, v]) => `${k}${sep}${v}`).join("\n");
function fromLines(text, sep) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(sep);
    if (at < 1) throw new Error(`"${line}" is not key${sep}value`);
    out[line.slice(0, at).trim()] = line.slice(at + sep.length).trim();
  }
  return out;
}

function subscriptionForm(sub, onSave) {
  const f = {
    url: h("input", { name: "url", value: sub.url || "", required: "" }),
    types: h("input", { name: "event_types", value: (sub.event_types || ["*"]).join(", ") }),
    description: h("input", { name: "description", value: sub.description || "" }),
    labels: h("textarea", { name: "labels" }),
    headers: h("textarea", { name: "headers" }),
    rate: h("input", { name: "rate_limit_per_s", type: "number", step: "any", value: sub.rate_limit_per_s ?? "" }),
    inflight: h("input", { name: "max_in_flight", type: "number", value: sub.max_in_flight ?? "" }),
    ordering: h("select", { name: "ordering" }, h("option", { value: "none" }, "none"),
      h("option", { value: "per_key" }, "per key")),
    filter: h("textarea", { name: "filter" }),
    batchEvents: h("input", { name: "batch_max_events", type: "number", value: sub.batch?.max_events ?? "" }),
    batchWait: h("input", { name: "batch_max_wait_ms", type: "number", value: sub.batch?.max_wait_ms ?? "" }),
    debounce: h("input", { name: "debounce_s", type: "number", value: sub.debounce_s ?? "" }),
    payload: h("select", { name: "payload" }, h("option", { value: "full" }, "full"),
      h("option", { value: "thin" }, "thin (id and a fetch link)")),
  };
  f.filter.value = sub.filter || "";
  f.payload.value = sub.payload || "full";
  f.labels.value = toLines(sub.labels, "=");
  f.headers.value = toLines(sub.headers, ": ");
  f.ordering.value = sub.ordering || "none";
  const save = h("button", { class: "primary", type: "submit" }, sub.id ? "Save" : "Create");
  return h("form", {
    class: "card",
    onsubmit: (event) => {
      event.preventDefault();
      act(save, () => {
        const body = {
          url: f.url.value.trim(),
          event_types: f.types.value.split(",").map((t) => t.trim()).filter(Boolean),
          description: f.description.value || null,
          labels: fromLines(f.labels.value, "="),
          headers: fromLines(f.headers.value, ":"),
          rate_limit_per_s: f.rate.value === "" ? null : Number(f.rate.value),
          max_in_flight: f.inflight.value === "" ? null : Number(f.inflight.value),
          ordering: f.ordering.value,
          filter: f.filter.value.trim() || null,
          batch: batchOf(f.batchEvents.value, f.batchWait.value),
          debounce_s: f.debounce.value === "" ? null : Number(f.debounce.value),
          payload: f.payload.value,
        };
        return onSave(body);
      });
    },
  },
  h("div", { class: "grid" },
    h("label", null, "URL", f.url), h("label", null, "Event types (comma-separated, * for all)", f.types),
    h("label", null, "Description", f.description), h("label", null, "Ordering", f.ordering),
    h("label", null, "Rate limit (requests/s, empty: none)", f.rate),
    h("label", null, "Max in flight (empty: none)", f.inflight),
    h("label", null, "Labels (key=value per line)", f.labels),
    h("label", null, "Headers (Name: value per line)", f.headers),
    h("label", null, "Payload filter (SQL/JSON path, empty: every event)", f.filter),
    h("label", null, "Batch: max events per POST (empty: no batching)", f.batchEvents),
    h("label", null, "Batch: max wait after the first (ms)", f.batchWait),
    h("label", null, "Debounce per ordering key (s, empty: none)", f.debounce),
    h("label", null, "Payload", f.payload)),
  h("div", { class: "row" }, save));
}

// Both empty: no batching (null clears it); one alone is a mistake the form names.
function batchOf(maxEvents, maxWaitMs) {
  if (maxEvents === "" && maxWaitMs === "") return null;
  if (maxEvents === "" || maxWaitMs === "") throw new Error("a batch needs both max events and max wait");
  return { max_events: Number(maxEvents), max_wait_ms: Number(maxWaitMs) };
}

async function newSubscription(appId) {
  frame("subscriptions");
  show(h("h1", null, "Add an endpoint"), subscriptionForm({}, async (body) => {
    const created = await call("POST", app("/subscriptions"), body);
    location.hash = `#/apps/${appId}/subscriptions/${created.id}`;
  }));
}

async function subscription(appId, subId) {
  frame("subscriptions");
  const [sub, attempts] = await Promise.all([
    call("GET", app(`/subscriptions/${subId}`)),
    call("GET", app(`/attempts${q({ subscription_id: subId, limit: 20 })}`)),
  ]);
  const secret = h("code", { id: "secret" }, "whsec_••••••••");
  const reveal = h("button", { onclick: () => { secret.textContent = sub.secret; } }, "Show");
  const rotate = h("button", { id: "rotate" }, "Rotate secret");
  rotate.addEventListener("click", () => act(rotate, () => call("POST", app(`/subscriptions/${subId}/rotate-secret`)), (rotated) => {
    sub.secret = rotated.secret;
    secret.textContent = rotated.secret;
    notice("Secret rotated: the previous one still signs alongside it for 24 hours.");
  }));
  const toggle = h("button", { id: "toggle", class: sub.enabled ? "danger" : null }, sub.enabled ? "Disable" : "Enable");
  toggle.addEventListener("click", () => act(toggle,
    () => call("PATCH", app(`/subscriptions/${subId}`), { enabled: !sub.enabled }), () => route()));
  const test = h("button", { id: "send-test" }, "Send test");
  test.addEventListener("click", () => act(test, () => call("POST", app(`/subscriptions/${subId}/test`)),
    (sent) => notice(`Test delivery queued (attempt ${sent.attempt_id}).`)));
  const since = h("input", { type: "datetime-local", name: "since", step: "1" });
  const recover = h("button", { id: "recover" }, "Recover");
  recover.addEventListener("click", () => act(recover, () => {
    if (!since.value) throw new Error("choose a time to recover from");
    return call("POST", app(`/subscriptions/${subId}/recover`), { since: new Date(since.value).toISOString() });
  }, (result) => notice(`Recovered: ${result.attempts_created} attempts created.`)));
  const remove = h("button", { class: "danger" }, "Delete");
  remove.addEventListener("click", () => act(remove, () => call("DELETE", app(`/subscriptions/${subId}`)),
    () => { location.hash = `#/apps/${appId}/subscriptions`; }));
  show(
    h("h1", { class: "wrap" }, sub.url),
    h("div", { class: "card" },
      h("div", null, healthBadges(sub)),
      h("dl", { class: "kv" },
        h("dt", null, "Id"), h("dd", null, sub.id),
        h("dt", null, "Circuit open since"), h("dd", null, when(sub.health.open_since)),
        h("dt", null, "Next probe"), h("dd", null, when(sub.health.probe_at)),
        h("dt", null, "Failures in a row"), h("dd", null, String(sub.health.failure_streak)),
        h("dt", null, "Disabled because"), h("dd", null, sub.disabled_reason || "—"),
        h("dt", null, "Secret"), h("dd", null, secret, " ", reveal, " ", rotate))),
    h("div", { class: "card row" }, toggle, test,
      h("label", null, "Recover what failed since", since), recover, remove),
    h("h2", null, "Settings"),
    subscriptionForm(sub, async (body) => {
      await call("PATCH", app(`/subscriptions/${subId}`), body);
      await route();
      notice("Saved.");
    }),
    h("h2", null, "Latest attempts"),
    attemptTable(appId, attempts.data),
  );
}

function attemptTable(appId, rows, onRetry) {
  return h("table", { class: "attempts" },
    h("tr", null, ["Status", "Event", "Try", "Response", "When", ""].map((t) => h("th", null, t))),
    rows.map((a) => {
      const retry = h("button", { class: "retry" }, "Retry");
      retry.addEventListener("click", () => act(retry, () => call("POST", app(`/attempts/${a.id}/retry`)),
        () => (onRetry ? onRetry() : notice("Retry queued."))));
      return h("tr", { "data-status": a.status },
        h("td", null, badge(a.status.replace("_", " "), STATUS_TONE[a.status])),
        h("td", { class: "wrap" }, h("a", { href: `#/apps/${appId}/events/${a.event_id}` }, a.event_id)),
        h("td", null, `${a.try_number} (${a.trigger})`,
          a.batch_id ? h("div", { class: "muted wrap batch" }, `batch ${a.batch_id}`) : null),
        h("td", null, a.response ? `${a.response.status_code} in ${a.response.elapsed_ms} ms` : a.error || "—"),
        h("td", null, when(a.finished_at || a.due_at)),
        h("td", null, FINISHED.includes(a.status) ? retry : null));
    }));
}

function hashParams() {
  const at = location.hash.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : location.hash.slice(at + 1));
}

function setHashParams(path, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  location.hash = `${path}${query.toString() ? `?${query}` : ""}`;
}

async function events(appId) {
  frame("events");
  const params = hashParams();
  const filters = {
    event_type: params.get("event_type") || "", since: params.get("since") || "",
    until: params.get("until") || "", labels: params.get("labels") || "", cursor: params.get("cursor") || "",
  };
  const query = { event_type: filters.event_type, since: filters.since, until: filters.until,
    cursor: filters.cursor, limit: 50 };
  for (const [k, v] of Object.entries(fromLines(filters.labels.replaceAll(",", "\n"), "="))) query[`label.${k}`] = v;
  const page = await call("GET", app(`/events${q(query)}`));
  const f = {
    type: h("input", { name: "event_type", value: filters.event_type }),
    since: h("input", { name: "since", value: filters.since, placeholder: "2025-01-31T00:00:00Z" }),
    until: h("input", { name: "until", value: filters.until }),
    labels: h("input", { name: "labels", value: filters.labels, placeholder: "customer=acme, region=eu" }),
  };
  const base = `#/apps/${appId}/events`;
  show(
    h("h1", null, "Events"),
    h("form", { class: "card row", onsubmit: (e) => {
      e.preventDefault();
      setHashParams(base, { event_type: f.type.value, since: f.since.value, until: f.until.value, labels: f.labels.value });
    } },
    h("label", null, "Type", f.type), h("label", null, "Since", f.since), h("label", null, "Until", f.until),
    h("label", null, "Labels", f.labels), h("button", { type: "submit" }, "Filter")),
    h("table", { id: "events" },
      h("tr", null, ["Event", "Type", "Labels", "Accepted", "Attempts"].map((t) => h("th", null, t))),
      page.data.map((e) => h("tr", null,
        h("td", { class: "wrap" }, h("a", { href: `${base}/${e.id}` }, e.event_id)),
        h("td", null, e.event_type),
        h("td", { class: "wrap" }, Object.entries(e.labels).map(([k, v]) => badge(`${k}=${v}`))),
        h("td", null, when(e.created_at)), h("td", null, String(e.attempts_created))))),
    h("div", { class: "row" },
      filters.cursor ? h("a", { href: base }, "First page") : null,
      page.next_cursor ? h("button", { id: "next-page", onclick: () => setHashParams(base, { ...filters, cursor: page.next_cursor }) }, "Next page") : null),
  );
}

async function eventPage(appId, eventId) {
  frame("events");
  const event = await call("GET", app(`/events/${encodeURIComponent(eventId)}`));
  const subs = {};
  await Promise.all([...new Set(event.attempts.map((a) => a.subscription_id))].map(async (id) => {
    subs[id] = await call("GET", app(`/subscriptions/${id}`)).catch(() => null);
  }));
  const replay = h("button", { id: "replay", class: "primary" }, "Replay");
  replay.addEventListener("click", () => act(replay, () => call("POST", app(`/events/${event.id}/replay`)),
    (r) => { route(); notice(`Replayed: ${r.attempts_created} new attempts.`); }));
  show(
    h("h1", { class: "wrap" }, `${event.event_type} · ${event.event_id}`),
    h("div", { class: "card" },
      h("dl", { class: "kv" },
        h("dt", null, "Id"), h("dd", null, event.id),
        h("dt", null, "Labels"), h("dd", null, Object.entries(event.labels).map(([k, v]) => badge(`${k}=${v}`))),
        h("dt", null, "Accepted"), h("dd", null, when(event.created_at)),
        h("dt", null, "Ordering key"), h("dd", null, event.ordering_key),
        h("dt", null, "Priority"), h("dd", { id: "priority" }, event.priority)),
      h("h2", null, "Payload"), json(event.payload), replay),
    h("h2", null, "Attempts"),
    h("div", { class: "timeline", id: "timeline" }, event.attempts.map((a) => attemptCard(appId, a, subs[a.subscription_id], event))),
  );
  if (event.attempts.some((a) => a.status === "pending" || a.status === "in_flight")) refreshIn(1000);
}

function attemptCard(appId, a, sub, event) {
  const sent = {
    ...(sub ? sub.headers : {}), "content-type": "application/json", "user-agent": "Hookpost",
    "webhook-id": event.id, "webhook-timestamp": a.started_at ? String(Math.floor(Date.parse(a.started_at) / 1000)) : "—",
    "webhook-signature": "v1,… (one per secret)",
  };
  const retry = h("button", { class: "retry" }, "Retry");
  retry.addEventListener("click", () => act(retry, () => call("POST", app(`/attempts/${a.id}/retry`)), () => route()));
  return h("div", { class: `card ${a.status}`, "data-status": a.status },
    h("div", { class: "row" }, badge(a.status.replace("_", " "), STATUS_TONE[a.status]),
      h("span", null, `try ${a.try_number} · ${a.trigger}`),
      h("span", { class: "muted" }, `due ${when(a.due_at)} · started ${when(a.started_at)} · finished ${when(a.finished_at)}`),
      ["pending", "in_flight"].includes(a.status) ? null : retry),
    a.batch_id ? h("div", { class: "muted wrap batch" }, `batch ${a.batch_id}`) : null,
    h("div", { class: "muted wrap" }, "to ", sub ? h("a", { href: `#/apps/${appId}/subscriptions/${sub.id}` }, sub.url) : a.subscription_id),
    h("details", null, h("summary", null, "Request headers"), json(sent)),
    a.response ? h("div", null,
      h("div", null, `Response ${a.response.status_code} in ${a.response.elapsed_ms} ms`),
      h("details", null, h("summary", null, "Response headers"), json(a.response.headers)),
      h("div", { class: "muted" }, "Response body"), h("pre", { class: "body" }, a.response.body)) : null,
    a.error ? h("div", { class: "bad wrap" }, `Error: ${a.error}`) : null);
}

async function attempts(appId) {
  frame("attempts");
  const params = hashParams();
  const status = params.get("status") || "";
  const cursor = params.get("cursor") || "";
  const page = await call("GET", app(`/attempts${q({ status, cursor, limit: 50 })}`));
  const base = `#/apps/${appId}/attempts`;
  const select = h("select", { name: "status", onchange: () => setHashParams(base, { status: select.value }) },
    ["", "pending", "in_flight", ...FINISHED].map((s) =>
      h("option", { value: s }, s ? s.replace("_", " ") : "any status")));
  select.value = status;
  show(
    h("h1", null, "Attempts"),
    h("div", { class: "card row" }, h("label", null, "Status", select)),
    attemptTable(appId, page.data, () => route()),
    h("div", { class: "row" }, page.next_cursor
      ? h("button", { onclick: () => setHashParams(base, { status, cursor: page.next_cursor }) }, "Next page") : null),
  );
}

// ---- Routing

function refreshIn(ms) {
  clearTimeout(timer);
  const hash = location.hash;
  timer = setTimeout(() => { if (location.hash === hash) route(true); }, ms);
}

async function route(quiet = false) {
  clearTimeout(timer);
  if (!session) {
    frame();
    show(signInForm());
    return;
  }
  const path = (location.hash.replace(/^#/, "").split("?")[0] || "/").split("/").filter(Boolean);
  try {
    if (path[0] !== "apps") {
      if (session.kind === "admin") return await applications();
      location.hash = `#/apps/${session.app_id}${session.kind === "portal" ? "/subscriptions" : ""}`;
      return;
    }
    const [, appId, section, id] = path;
    if (appId !== session.app_id) {
      session.app_id = appId;
      saveSession(session);
    }
    await consoleKey(appId);
    if (!section) return await (session.kind === "portal" ? subscriptions(appId) : overview(appId));
    if (section === "subscriptions" && id === "new") return await newSubscription(appId);
    if (section === "subscriptions") return await (id ? subscription(appId, id) : subscriptions(appId));
    if (section === "events") return await (id ? eventPage(appId, id) : events(appId));
    if (section === "attempts") return await attempts(appId);
    show(h("p", null, "Nothing here."));
  } catch (error) {
    if (!session) return;
    if (!quiet) show(h("h1", null, "Something went wrong"));
    notice(problemText(error), true);
  }
}

function start() {
  exchangeLink().then(() => route(), () => {});
}

// A portal link may also be opened in a tab already showing the console.
window.addEventListener("hashchange", () => (location.hash.startsWith("#link=") ? start() : route()));
start();
