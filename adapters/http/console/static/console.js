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

function autoSubmit() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
}

liveSignals();
configForm();
autoSubmit();
