// The staff console's one script: it keeps the API's tokens for this tab, asks the
// server for each page's fragment with the bearer token, and sends forms to the public
// API. Nothing here reads data the API would not give the signed-in account.
"use strict";

const TOKENS = "midas.console.tokens";
const API_BASE = "/api/v1";
const STAFF = new Set(["concierge", "admin", "super_admin"]);

function tokens() {
  try { return JSON.parse(sessionStorage.getItem(TOKENS)) || null; } catch { return null; }
}
function keep(t) {
  sessionStorage.setItem(TOKENS, JSON.stringify({
    access: t.access_token, refresh: t.refresh_token, role: t.role, account: t.account_id,
  }));
}
function forget() { sessionStorage.removeItem(TOKENS); }

function toSignIn(message) {
  forget();
  const next = encodeURIComponent(location.pathname + location.search);
  location.assign("/console/sign-in?next=" + next + (message ? "&why=" + encodeURIComponent(message) : ""));
}

let refreshing = null;
async function refresh() {
  // One refresh at a time: the refresh token rotates, so a second use would be reuse.
  if (!refreshing) {
    refreshing = (async () => {
      const t = tokens();
      if (!t) return false;
      const r = await fetch(API_BASE + "/auth/refresh", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({refresh_token: t.refresh}),
      });
      if (!r.ok) return false;
      keep(await r.json());
      return true;
    })().finally(() => { setTimeout(() => { refreshing = null; }, 0); });
  }
  return refreshing;
}

async function authorised(url, options = {}) {
  const t = tokens();
  if (!t) { toSignIn(); throw new Error("signed out"); }
  const send = (access) => fetch(url, {
    ...options, headers: {...(options.headers || {}), Authorization: "Bearer " + access},
  });
  let response = await send(t.access);
  if (response.status === 401 && await refresh()) response = await send(tokens().access);
  if (response.status === 401) { toSignIn("Your session has ended; sign in again."); throw new Error("signed out"); }
  return response;
}

function say(message, isError) {
  const box = document.getElementById("status");
  if (!box) return;
  box.textContent = message;
  box.className = "status " + (isError ? "error" : "ok");
}

async function problemText(response) {
  try {
    const p = await response.json();
    const fields = (p.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
    return (p.detail || p.title || ("HTTP " + response.status)) + (fields ? " (" + fields + ")" : "");
  } catch { return "HTTP " + response.status; }
}

let timer = null;
async function loadFragment(minPosition) {
  const main = document.getElementById("content");
  const query = new URLSearchParams(location.search);
  if (minPosition) query.set("min_position", String(minPosition));  // reads include it
  const url = main.dataset.fragment + (query.size ? "?" + query.toString() : "");
  const response = await authorised(url);
  if (response.status === 403 && !STAFF.has(tokens().role)) {
    // The service refused the fragment: the console is for staff roles only.
    await signOut(false);
    toSignIn("This console is for staff only.");
    return;
  }
  if (!response.ok) { say(await problemText(response), true); return; }
  const focused = document.activeElement && document.activeElement.id;
  main.innerHTML = await response.text();
  main.dataset.loaded = String(Date.now());
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  bindForms(main);
  const live = main.querySelector("[data-refresh]");
  clearTimeout(timer);
  if (live) timer = setTimeout(() => loadFragment(), Number(live.dataset.refresh) * 1000);
}

function bodyOf(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled) continue;
    let value = field.value;
    if (value === "" && !field.required) continue;
    if (field.dataset.kind === "minor") value = Math.round(Number(value) * 100);
    else if (field.dataset.kind === "instant") value = new Date(value).toISOString();
    else if (field.type === "number") value = Number(value);
    body[field.name] = value;
  }
  return body;
}

function fill(template, answer) {
  return template.replace(/\{(\w+)\}/g, (_, key) => {
    const v = answer && answer[key];
    if (typeof v === "number" && /amount/.test(key)) return (v / 100).toFixed(2);
    return v === undefined || v === null ? "" : String(v);
  });
}

function bindForms(root) {
  for (const form of root.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const [method, path] = form.dataset.api.split(" ");
      const body = method === "DELETE" ? null : JSON.stringify(bodyOf(form));
      const button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      try {
        const response = await authorised(path, {
          method, body,
          headers: {"Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID()},
        });
        if (!response.ok) { say(await problemText(response), true); return; }
        const answer = response.status === 204 ? {} : await response.json().catch(() => ({}));
        say(fill(form.dataset.done || "Done.", answer), false);
        if (form.dataset.open && answer.id) {
          // The page opened reads what this command wrote: its position goes along.
          const url = fill(form.dataset.open, answer);
          location.assign(answer.position ? `${url}?min_position=${answer.position}` : url);
          return;
        }
        await loadFragment(answer.position);
      } finally {
        if (button) button.disabled = false;
      }
    });
  }
  for (const form of root.querySelectorAll("form[data-propose]")) bindChange(form);
  for (const form of root.querySelectorAll("form[data-navigate]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
      location.assign(form.getAttribute("action") + "?" + params.toString());
    });
  }
}

function minor(amount, currency) {
  return (amount / 100).toFixed(2) + " " + (currency || "");
}

// A change to a booking: propose (priced, nothing recorded), show the difference and the
// refund, then apply the same body. Only fields that differ from the booking are sent.
function bindChange(form) {
  const out = form.querySelector("[data-proposal]");
  const apply = form.querySelector("button[data-apply]");
  let proposed = null;
  const body = () => {
    const b = {};
    for (const field of form.elements) {
      if (!field.name || field.value === "" || field.value === field.dataset.was) continue;
      b[field.name] = field.dataset.kind === "utc" ? field.value + ":00Z" : field.value;
    }
    return b;
  };
  const send = (b) => authorised(form.dataset.propose, {
    method: "POST", body: JSON.stringify(b),
    headers: {"Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID()},
  });
  const show = (lines, isError) => {
    out.replaceChildren(...lines.map((text) => {
      const p = document.createElement("p");
      p.textContent = text;
      return p;
    }));
    out.className = "proposal" + (isError ? " error" : "");
  };
  form.addEventListener("input", () => { proposed = null; apply.hidden = true; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    proposed = null;
    apply.hidden = true;
    // The previous proposal no longer describes the form: it goes before the answer comes.
    show(["Pricing the change…"], false);
    const b = body();
    const response = await send(b);
    if (!response.ok) {
      const text = await problemText(response);
      show(["Refused: " + text], true);
      say(text, true);
      return;
    }
    const p = await response.json();
    const c = p.currency;
    const lines = [
      `Now: ${p.current.start} to ${p.current.end}, ${p.current.service_level},` +
        ` total ${minor(p.current.quote.total_due, c)}`,
      `Proposed: ${p.proposed.start} to ${p.proposed.end}, ${p.proposed.service_level},` +
        ` total ${minor(p.proposed.quote.total_due, c)}`,
      `Difference: ${minor(p.difference, c)}; to pay: ${minor(p.to_pay, c)};` +
        ` refund: ${minor(p.refund.amount, c)} (${p.refund.percentage} %)`,
    ];
    for (const w of p.busy || []) lines.push(`Busy: ${w.start} to ${w.end}`);
    for (const r of p.reasons || []) lines.push("Cannot apply: " + r);
    show(lines, !p.applicable);
    if (p.applicable) { proposed = b; apply.hidden = false; }
  });
  apply.addEventListener("click", async () => {
    if (!proposed) return;
    apply.disabled = true;
    try {
      const response = await send({...proposed, apply: true});
      if (!response.ok) {
        const text = await problemText(response);
        show(["Refused: " + text], true);
        say(text, true);
        return;
      }
      const answer = await response.json();
      say(answer.state === "awaiting_payment"
        ? `Change held: awaiting the customer's payment of ${minor(answer.to_pay, answer.currency)}.`
        : "Change applied.", false);
      await loadFragment(answer.position);
    } finally {
      apply.disabled = false;
    }
  });
}

async function signOut(go = true) {
  const t = tokens();
  if (t) {
    await fetch(API_BASE + "/auth/logout", {
      method: "POST",
      headers: {"Content-Type": "application/json", Authorization: "Bearer " + t.access},
      body: JSON.stringify({refresh_token: t.refresh}),
    }).catch(() => null);
  }
  forget();
  if (go) location.assign("/console/sign-in");
}

function signInPage() {
  const form = document.getElementById("sign-in-form");
  const error = document.getElementById("sign-in-error");
  const params = new URLSearchParams(location.search);
  if (params.get("why")) error.textContent = params.get("why");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const r = await fetch(API_BASE + "/auth/login", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({email: form.email.value, password: form.password.value}),
    });
    if (!r.ok) { error.textContent = await problemText(r); return; }
    keep(await r.json());
    const next = params.get("next");
    location.assign(next && next.startsWith("/console/") ? next : "/console/today");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("sign-in-form")) { signInPage(); return; }
  const t = tokens();
  if (!t) { toSignIn(); return; }
  document.getElementById("who").textContent = t.role.replace("_", " ");
  document.getElementById("sign-out").addEventListener("click", () => signOut(true));
  loadFragment().catch((e) => say(String(e.message || e), true));
});
