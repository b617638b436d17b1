// The dashboard: one EventSource for the live numbers and events, plain fetch() for the lists.
"use strict";

const $ = (id) => document.getElementById(id);
// Dead letters page by cursor (`?after=` the previous page's `next`): `dlCursors` holds the
// cursor of each page shown so far (null: the first), so "newer" goes back one.
const state = { dlCursors: [null], dlLimit: 10, dlNext: null, deadTotal: null, feed: [] };
const dlFirstPage = () => { state.dlCursors = [null]; };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Long topic names wrap after a dot, never inside a word.
const breakable = (name) => name.split(".").flatMap((part, i) => (i ? [el("wbr"), "." + part] : [part]));
const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en"));
const rate = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(v >= 100 ? 0 : 1));
const clock = (t) => new Date(typeof t === "number" ? t * 1000 : t).toLocaleTimeString("en-GB");

async function api(path, options) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) { location.reload(); throw new Error("signed out"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || body.error || response.statusText);
  return body;
}

function toast(text, bad) {
  const box = $("toast");
  box.textContent = text;
  box.className = bad ? "toast bad" : "toast";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

// --- overview ------------------------------------------------------------------------

function renderOverview(data) {
  $("worker").textContent = data.worker;
  let inRate = null, outRate = null;
  for (const p of data.pipelines) {
    if (p.in_per_s !== null) inRate = (inRate || 0) + p.in_per_s;
    if (p.out_per_s !== null) outRate = (outRate || 0) + p.out_per_s;
  }
  $("t-in").textContent = rate(inRate);
  $("t-out").textContent = rate(outRate);
  $("t-lag").textContent = num(data.lag_total);
  $("t-dead").textContent = num(data.dead_letters.total);
  $("t-lag").parentElement.classList.toggle("warn", (data.lag_total || 0) > 1000);
  $("t-dead").parentElement.classList.toggle("warn", data.dead_letters.total > 0);

  const problems = Object.entries(data.problems || {});
  $("problems").hidden = problems.length === 0;
  $("problems").textContent = problems.map(([what, why]) => `${what}: ${why}`).join(" · ");

  const cards = $("pipelines");
  cards.replaceChildren(...data.pipelines.map(pipelineCard));
  fillSelect($("dl-pipeline"), data.pipelines.map((p) => p.name));
  if (state.deadTotal !== data.dead_letters.total) {
    state.deadTotal = data.dead_letters.total;
    loadDeadLetters();
  }
}

function pipelineCard(p) {
  const rows = p.topics.map((t) => el("tr", {},
    el("td", { class: "mono" }, ...breakable(t.name)),
    el("td", { class: "num" }, t.partitions),
    el("td", { class: "num" }, num(t.end)),
    el("td", { class: "num" }, rate(t.produced_per_s)),
    el("td", { class: "num" + (t.lag ? " hot" : "") }, t.lag === null ? "–" : num(t.lag))));
  return el("article", { class: "card", "data-pipeline": p.name },
    el("header", {}, el("h3", {}, p.name),
      p.dead_letters ? el("span", { class: "pill bad" }, `${p.dead_letters} dead`) : null),
    el("div", { class: "stats" },
      stat("in/s", rate(p.in_per_s), "in"), stat("out/s", rate(p.out_per_s), "out"),
      stat("lag", p.lag === null ? "–" : num(p.lag), "lag"),
      stat("agents", p.agents.length, "agents")),
    rows.length ? el("table", { class: "topics" },
      el("thead", {}, el("tr", {}, el("th", {}, "topic"), el("th", {}, "parts"), el("th", {}, "end"),
        el("th", {}, "in/s"), el("th", {}, "lag"))),
      el("tbody", {}, ...rows)) : el("p", { class: "muted" }, "no topics"));
}

function stat(label, value, key) {
  return el("div", { class: "stat", "data-stat": key }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

function fillSelect(select, values) {
  const current = select.value;
  const have = [...select.options].map((o) => o.value);
  for (const v of values) if (!have.includes(v)) select.append(el("option", { value: v }, v));
  select.value = current;
}

// --- dead letters ----------------------------------------------------------------------

async function loadDeadLetters() {
  const query = new URLSearchParams({ limit: state.dlLimit });
  const after = state.dlCursors[state.dlCursors.length - 1];
  if (after) query.set("after", after);
  if ($("dl-pipeline").value) query.set("pipeline", $("dl-pipeline").value);
  if ($("dl-reason").value) query.set("reason", $("dl-reason").value);
  let body;
  try { body = await api(`/dead-letters?${query}`); } catch (err) { toast(`dead letters: ${err.message}`, true); return; }
  state.dlNext = body.next;
  fillSelect($("dl-reason"), body.by_reason.map((r) => r.reason));
  $("dl-reasons").replaceChildren(...body.by_reason.map((r) =>
    el("button", { class: "chip", onclick: () => { $("dl-pipeline").value = r.pipeline; $("dl-reason").value = r.reason; dlFirstPage(); loadDeadLetters(); } },
      `${r.pipeline} · ${r.reason}`, el("b", {}, r.count))));
  const tbody = $("dl-table").tBodies[0];
  tbody.replaceChildren(...body.letters.map(letterRow));
  if (!body.letters.length) tbody.append(el("tr", {}, el("td", { colspan: 6, class: "muted empty" }, "no dead letters")));
  const first = (state.dlCursors.length - 1) * state.dlLimit;
  const shown = body.letters.length ? `${first + 1}–${first + body.letters.length}` : "none";
  $("dl-count").textContent = body.total ? `${shown} of ${body.total}` : "";
  $("dl-prev").disabled = state.dlCursors.length === 1;
  $("dl-next").disabled = body.next === null;
}

function letterRow(letter) {
  const button = el("button", { class: "replay", "data-id": letter.dead_letter_id, onclick: () => replay(letter, button) },
    letter.replayed_at ? "Replay again" : "Replay");
  return el("tr", { "data-id": letter.dead_letter_id },
    el("td", { class: "nowrap" }, clock(letter.failed_at)),
    el("td", {}, letter.pipeline),
    el("td", {}, el("span", { class: "pill bad" }, letter.reason)),
    el("td", { class: "mono", title: letter.position }, letter.position),
    el("td", { class: "detail", title: letter.preview || "" }, letter.detail),
    el("td", { class: "nowrap" }, button,
      letter.replayed_at ? el("div", { class: "muted small replayed" }, `replayed ${clock(letter.replayed_at)}`) : null));
}

async function replay(letter, button) {
  button.disabled = true;
  button.textContent = "Replaying…";
  try {
    const body = await api(`/dead-letters/${letter.dead_letter_id}/replay`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    toast(`Replayed to ${body.topic}`);
    loadDeadLetters();
  } catch (err) {
    toast(`Replay failed: ${err.message}`, true);
    button.disabled = false;
    button.textContent = "Replay";
  }
}

// --- deliveries --------------------------------------------------------------------------

async function loadDeliveries() {
  let body;
  try { body = await api("/deliveries?limit=12"); } catch (err) { return; }
  const tbody = $("deliveries").tBodies[0];
  tbody.replaceChildren(...body.deliveries.map((d) => el("tr", {},
    el("td", { class: "nowrap" }, clock(d.created_at)),
    el("td", {}, d.pipeline),
    el("td", { class: "mono" }, d.subject_id),
    el("td", {}, `${d.endpoint_id}`, d.channel ? el("span", { class: "muted" }, ` (${d.channel})`) : null),
    el("td", {}, el("span", { class: `pill ${d.status}` }, d.status)),
    el("td", {}, ...d.attempts.map((a) => el("span", {
      class: "attempt " + (a.status_code && a.status_code < 300 ? "ok" : "bad"),
      title: `${a.at} ${a.target}${a.error ? " — " + a.error : ""}`,
    }, `#${a.attempt} ${a.status_code || "err"} ${Math.round(a.latency_ms)}ms`))))));
  if (!body.deliveries.length) tbody.append(el("tr", {}, el("td", { colspan: 6, class: "muted empty" }, "no deliveries yet")));
}

// --- live events ------------------------------------------------------------------------

function addEvents(items) {
  const feed = $("events");
  for (const e of items) {
    feed.prepend(el("li", { class: e.outcome === "applied" ? "" : "bad" },
      el("span", { class: "muted nowrap" }, clock(e.at)),
      el("span", { class: "tag" }, e.pipeline),
      el("span", { class: "mono" }, e.position),
      el("span", { class: "key" }, e.key === null ? "" : e.key),
      el("span", { class: "muted small" }, `${e.outcome} · batch of ${e.batch}`)));
  }
  while (feed.children.length > 40) feed.lastChild.remove();
}

// --- wiring ----------------------------------------------------------------------------------

function connect() {
  const source = new EventSource("/dashboard/events");
  source.addEventListener("open", () => { $("live").textContent = "live"; $("live").className = "pill on"; });
  source.addEventListener("error", () => { $("live").textContent = "reconnecting…"; $("live").className = "pill off"; });
  source.addEventListener("overview", (msg) => renderOverview(JSON.parse(msg.data)));
  source.addEventListener("events", (msg) => addEvents(JSON.parse(msg.data)));
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["dl-pipeline", "dl-reason"]) $(id).addEventListener("change", () => { dlFirstPage(); loadDeadLetters(); });
  $("dl-prev").addEventListener("click", () => { if (state.dlCursors.length > 1) state.dlCursors.pop(); loadDeadLetters(); });
  $("dl-next").addEventListener("click", () => { if (state.dlNext) state.dlCursors.push(state.dlNext); loadDeadLetters(); });
  connect();
  loadDeadLetters();
  loadDeliveries();
  setInterval(loadDeliveries, 5000);
});
