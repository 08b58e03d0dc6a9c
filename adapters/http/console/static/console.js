// The console's only script (an ES module, no build step, nothing fetched from elsewhere).
// Pages are rendered on the server; this adds the live signal stream and sends the
// configuration forms to the REST API. Changes are authenticated by the session cookie
// that the sign-in form set (HttpOnly: this script never sees a token) plus the
// X-Requested-By header the API requires with it.

const API = "/api/v1";

async function api(method, path, body) {
  const response = await fetch(API + path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Requested-By": "console" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  return { status: response.status, ok: response.ok, payload };
}

function text(tag, value, className) {
  const cell = document.createElement(tag);
  cell.textContent = value;
  if (className) cell.className = className;
  return cell;
}

// --- live signals ---------------------------------------------------------------------------

function liveSignals() {
  const table = document.getElementById("signals");
  if (!table) return;
  const body = table.querySelector("tbody");
  const state = document.getElementById("stream-state");
  const count = document.getElementById("signal-count");
  let received = 0;
  const source = new EventSource(table.dataset.stream);
  source.onopen = () => { state.textContent = "live"; };
  source.onerror = () => { state.textContent = "reconnecting…"; };
  source.addEventListener("signal", (event) => {
    const s = JSON.parse(event.data);
    const row = document.createElement("tr");
    row.className = "signal " + s.action;
    row.dataset.signalId = s.signal_id;
    const version = s.metadata && s.metadata.strategy_config ? s.metadata.strategy_config.version : "";
    for (const value of [s.timestamp, s.strategy_id, s.symbol, s.action,
      Number(s.confidence).toFixed(2), s.price, version, s.signal_id]) {
      row.appendChild(text("td", String(value)));
    }
    body.prepend(row);
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
    received += 1;
    count.textContent = String(received);
  });
}

// --- configuration form ---------------------------------------------------------------------

function clearErrors(form) {
  for (const box of form.querySelectorAll("[data-error-for]")) box.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function showErrors(form, result) {
  const error = result.payload && result.payload.error;
  const details = (error && Array.isArray(error.details)) ? error.details : [];
  let shown = false;
  for (const d of details) {
    const name = String(d.field || "").replace(/^parameters\./, "");
    const box = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (box) {
      box.textContent = d.message;
      const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      shown = true;
    }
  }
  const formBox = form.querySelector('[data-error-for="__form__"]');
  if (result.status === 401 || result.status === 403) {
    formBox.textContent = (error ? error.message : "not allowed") + " — sign in with the admin token.";
  } else if (!shown || details.some((d) => d.field === "__root__")) {
    const root = details.filter((d) => d.field === "__root__" || !form.querySelector(
      `[data-error-for="${CSS.escape(String(d.field || "").replace(/^parameters\./, ""))}"]`));
    const messages = root.map((d) => `${d.field}: ${d.message}`);
    formBox.textContent = `${result.status} ${error ? error.message : "request failed"}`
      + (messages.length ? " — " + messages.join("; ") : "");
  }
}

function valueOf(input) {
  if (input.dataset.type === "bool") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return raw;
  const number = Number(raw);
  return Number.isNaN(number) ? raw : number;
}

function changedParameters(form) {
  const parameters = {};
  for (const input of form.querySelectorAll("input[data-type]")) {
    const initial = input.dataset.initial;
    const now = input.dataset.type === "bool" ? String(input.checked) : input.value.trim();
    if (input.dataset.reset === "true") parameters[input.name] = null;
    else if (now !== initial) parameters[input.name] = valueOf(input);
  }
  return parameters;
}

function layerPath(form) {
  const strategy = encodeURIComponent(form.dataset.strategy);
  const symbol = form.dataset.symbol;
  return `/strategies/${strategy}/config` + (symbol ? `/${encodeURIComponent(symbol)}` : "");
}

function author(form) {
  return {
    changed_by: form.querySelector("#changed-by").value.trim(),
    reason: form.querySelector("#reason").value.trim(),
  };
}

function report(form, message) {
  form.querySelector("#result").textContent = message;
}

function renderPreview(form, payload) {
  const box = form.querySelector("#result");
  box.textContent = "";
  box.appendChild(text("p", "Preview (nothing was stored):"));
  const pre = text("pre", JSON.stringify(payload.data, null, 2));
  pre.id = "preview-result";
  box.appendChild(pre);
}

function configForm() {
  const form = document.getElementById("config-form");
  if (!form) return;
  const write = async (mode) => {
    clearErrors(form);
    report(form, "");
    const parameters = changedParameters(form);
    if (Object.keys(parameters).length === 0) {
      form.querySelector('[data-error-for="__form__"]').textContent = "Nothing changed.";
      return;
    }
    const body = { parameters, ...author(form) };
    let result;
    if (mode === "preview") {
      result = await api("POST", layerPath(form) + "/preview", body);
    } else {
      if (mode === "validate") body.validate_only = true;
      result = await api("POST", layerPath(form), body);
    }
    if (!result.ok) {
      showErrors(form, result);
      return;
    }
    if (mode === "preview") renderPreview(form, result.payload);
    else if (mode === "validate") report(form, "Valid: nothing was stored.");
    else {
      const data = result.payload.data;
      report(form, `Applied: ${result.payload.metadata.action}, effective version ${data.version}.`);
      window.setTimeout(() => window.location.reload(), 600);
    }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); write("apply"); });
  form.querySelector("#validate").addEventListener("click", () => write("validate"));
  const preview = form.querySelector("#preview");
  if (preview) preview.addEventListener("click", () => write("preview"));
  for (const button of form.querySelectorAll("[data-reset]")) {
    button.addEventListener("click", () => {
      const input = form.querySelector(`[name="${CSS.escape(button.dataset.reset)}"]`);
      input.dataset.reset = input.dataset.reset === "true" ? "false" : "true";
      button.textContent = input.dataset.reset === "true" ? "keep" : "inherit";
      input.disabled = input.dataset.reset === "true";
    });
  }
  const remove = form.querySelector("#delete-layer");
  if (remove) {
    remove.addEventListener("click", async () => {
      clearErrors(form);
      const who = author(form);
      const query = new URLSearchParams(who).toString();
      const result = await api("DELETE", layerPath(form) + "?" + query);
      if (!result.ok) showErrors(form, result);
      else window.location.reload();
    });
  }
  for (const button of document.querySelectorAll("button.rollback")) {
    button.addEventListener("click", async () => {
      clearErrors(form);
      const body = {
        symbol: form.dataset.symbol || null,
        to_version: Number(button.dataset.version),
        ...author(form),
      };
      const result = await api("POST", `/strategies/${encodeURIComponent(form.dataset.strategy)}/rollback`, body);
      if (!result.ok) showErrors(form, result);
      else {
        report(form, `Rolled back to version ${button.dataset.version}.`);
        window.setTimeout(() => window.location.reload(), 600);
      }
    });
  }
}

// --- pause switch ---------------------------------------------------------------------------

function cells(row, values) {
  for (const value of values) row.appendChild(text("td", value === null || value === undefined ? "" : String(value)));
  return row;
}

function pauseTarget(form) {
  const strategy = form.querySelector("#pause-strategy").value;
  const symbol = form.querySelector("#pause-symbol").value.trim().toUpperCase();
  const target = {};
  if (strategy) target.strategy_id = strategy;
  if (symbol) target.symbol = symbol;
  return target;
}

function pauseSwitch() {
  const form = document.getElementById("pause-form");
  const table = document.getElementById("pauses");
  if (!form || !table) return;
  const errorBox = document.getElementById("form-error");
  const resultBox = document.getElementById("result");
  const body = table.querySelector("tbody");

  const send = async (verb, target) => {
    errorBox.textContent = "";
    resultBox.textContent = "";
    const request = {
      ...target,
      changed_by: form.querySelector("#changed-by").value.trim(),
      reason: form.querySelector("#reason").value.trim(),
    };
    const result = await api("POST", `/signals/${verb}`, request);
    if (!result.ok) {
      const error = result.payload && result.payload.error;
      const details = error && Array.isArray(error.details)
        ? error.details.map((d) => `${d.field}: ${d.message}`).join("; ") : "";
      const hint = result.status === 401 || result.status === 403 ? " — sign in with the admin token." : "";
      errorBox.textContent = `${result.status} ${error ? error.message : "request failed"}`
        + (details ? ` — ${details}` : "") + hint;
      return;
    }
    resultBox.textContent = `${result.payload.metadata.action}: `
      + `${target.strategy_id || "every strategy"} / ${target.symbol || "every symbol"}`;
    await load();
  };

  const load = async () => {
    const result = await api("GET", table.dataset.api);
    body.textContent = "";
    if (!result.ok) {
      body.appendChild(cells(document.createElement("tr"), [`${result.status}: could not read the pauses`]));
      return;
    }
    const pauses = result.payload.data;
    if (pauses.length === 0) {
      const row = cells(document.createElement("tr"), ["No active pause: every signal that passes governance is published."]);
      row.firstChild.colSpan = 7;
      body.appendChild(row);
      return;
    }
    for (const p of pauses) {
      const row = cells(document.createElement("tr"), [
        p.strategy_id || "(every strategy)", p.symbol || "(every symbol)", p.version,
        p.updated_at, p.updated_by, p.reason,
      ]);
      row.className = "pause";
      const cell = document.createElement("td");
      const button = text("button", "Resume");
      button.type = "button";
      button.addEventListener("click", () => {
        const target = {};
        if (p.strategy_id) target.strategy_id = p.strategy_id;
        if (p.symbol) target.symbol = p.symbol;
        send("resume", target);
      });
      cell.appendChild(button);
      row.appendChild(cell);
      body.appendChild(row);
    }
  };

  form.querySelector("#pause").addEventListener("click", () => send("pause", pauseTarget(form)));
  form.querySelector("#resume").addEventListener("click", () => send("resume", pauseTarget(form)));
  load();
}

// --- live performance -----------------------------------------------------------------------

function fixed(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function percent(value) {
  return value === null || value === undefined ? "–" : (100 * Number(value)).toFixed(1) + " %";
}

async function performance() {
  const box = document.getElementById("performance");
  if (!box) return;
  const state = document.getElementById("performance-state");
  const strategy = encodeURIComponent(box.dataset.strategy);
  const symbol = box.dataset.symbol;
  const query = symbol ? `?symbol=${encodeURIComponent(symbol)}` : "";
  const [perf, recent] = await Promise.all([
    api("GET", `/strategies/${strategy}/performance${query}`),
    api("GET", `/signals/recent?strategy_id=${strategy}&limit=50` + (symbol ? `&symbol=${encodeURIComponent(symbol)}` : "")),
  ]);
  if (!perf.ok || !recent.ok) {
    state.textContent = `could not read the outcomes (${perf.status} / ${recent.status})`;
    state.className = "bad";
    return;
  }
  const data = perf.payload.data;
  state.textContent = `${data.signals} published signal(s) scored`;

  const horizons = document.querySelector("#horizons tbody");
  for (const [label, h] of Object.entries(data.horizons)) {
    horizons.appendChild(cells(document.createElement("tr"), [
      label, h.count, percent(h.hit_rate), fixed(h.mean_net_bps, 2), fixed(h.total_net_bps, 2),
      fixed(h.mean_gross_bps, 2),
    ]));
  }

  const trades = document.querySelector("#trades tbody");
  const t = data.trades;
  for (const [name, value] of [
    ["closed trades", t.trades], ["wins", t.wins], ["hit rate", percent(t.hit_rate)],
    ["net P&L (bps, sum)", fixed(t.net_pnl_bps, 2)], ["net P&L (USDT)", fixed(t.net_pnl_usdt, 4)],
    ["max drawdown (bps)", fixed(t.max_drawdown_bps, 2)], ["open", t.open], ["unfilled", t.unfilled],
  ]) {
    trades.appendChild(cells(document.createElement("tr"), [name, value]));
  }

  const versions = document.querySelector("#versions tbody");
  for (const [version, v] of Object.entries(data.by_config_version || {})) {
    const five = v.horizons["5m"] || {};
    versions.appendChild(cells(document.createElement("tr"), [
      version, v.signals, `${v.buy} / ${v.sell}`, percent(five.hit_rate), fixed(five.mean_net_bps, 2),
      v.trades.trades, fixed(v.trades.net_pnl_bps, 2),
    ]));
  }

  const rows = document.querySelector("#recent tbody");
  for (const r of recent.payload.data) {
    const outcome = r.outcome || {};
    const byHorizon = Object.entries(outcome.horizons || {})
      .map(([label, h]) => `${label} ${fixed(h.net_bps, 1)}`).join(" · ");
    const trade = outcome.trade
      ? `${outcome.trade.exit_reason} ${fixed(outcome.trade.net_bps, 1)} bps`
      : (outcome.trade_unfilled ? "unfilled" : "open");
    const row = cells(document.createElement("tr"), [
      new Date(r.signal_time_ms).toISOString(), r.symbol, r.action, r.config_version,
      fixed(r.payload.confidence, 2), byHorizon || "pending", trade,
    ]);
    rows.appendChild(row);
  }
}

function autoSubmit() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
}

liveSignals();
configForm();
pauseSwitch();
performance();
autoSubmit();
