// The merchandiser page: live vs candidate ranking side by side, explain, test queries,
// save / history / rollback through /admin/weights. The admin key stays in sessionStorage.
"use strict";

const KEY = "outfit-admin-key";
const SAVED = "outfit-test-queries";
const DEFAULT_QUERIES = [
  { kind: "query", value: "black jeans" }, { kind: "query", value: "red dress" },
  { kind: "query", value: "white sneakers" }, { kind: "query", value: "blue shirt" },
  { kind: "query", value: "leather watch" },
];
const $ = (id) => document.getElementById(id);
let live = null;
let last = null;

function key() { return sessionStorage.getItem(KEY); }
function admin(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = Object.assign({ "X-API-Key": key() || "" }, opts.headers || {});
  return api(path, opts);
}
const round = (x) => Math.round(x * 100) / 100;

function setWeights(bm25) {
  bm25 = round(bm25);
  $("w-bm25").value = bm25; $("w-vector").value = round(1 - bm25);
  $("w-bm25-out").textContent = bm25.toFixed(2);
  $("w-vector-out").textContent = round(1 - bm25).toFixed(2);
}
function setLtr(v) { $("ltr").value = v; $("ltr-out").textContent = Number(v).toFixed(2); }

function candidate() {
  const bm25 = round(Number($("w-bm25").value));
  const depth = $("depth").value === "" ? null : Number($("depth").value);
  return {
    hybrid: { bm25, vector: round(1 - bm25) },
    hybrid_depth: depth,
    rerank: { ltr_weight: round(Number($("ltr").value)), enabled: $("ltr-on").checked },
  };
}

async function signIn(k) {
  sessionStorage.setItem(KEY, k);
  try {
    await loadLive();
  } catch (err) {
    sessionStorage.removeItem(KEY);
    $("workspace").hidden = true; $("login").hidden = false;
    showError($("error"), err);
    return false;
  }
  showError($("error"), null);
  $("login").hidden = true; $("workspace").hidden = false;
  await loadHistory();
  return true;
}

async function loadLive() {
  live = await admin("/admin/weights");
  setWeights(live.weights.bm25);
  setLtr(live.blend.ltr_weight);
  $("ltr-on").checked = live.blend.enabled;
  $("live-info").textContent = "Live: version " + live.version + " \u00b7 BM25 " + live.weights.bm25.toFixed(2) + " / vector " + live.weights.vector.toFixed(2) + " \u00b7 LTR " + live.blend.ltr_weight.toFixed(2) + (live.blend.enabled ? "" : " (off)");
}

async function loadHistory() {
  const res = await admin("/admin/weights/history?limit=20");
  const body = $("history");
  body.replaceChildren();
  res.versions.forEach((v, i) => {
    const when = new Date(v.updated_at * 1000).toLocaleString();
    const btn = i === 0 ? el("span", { class: "hint", text: "live" }) : el("button", {
      type: "button", class: "rollback", "data-version": v.version, "aria-label": "Roll back to version " + v.version,
      onclick: () => rollback(v.version),
    }, "Roll back");
    body.append(el("tr", { "data-version": v.version },
      el("td", { text: String(v.version) }), el("td", { text: v.weights.bm25.toFixed(2) }),
      el("td", { text: v.weights.vector.toFixed(2) }), el("td", { text: v.blend.ltr_weight.toFixed(2) + (v.blend.enabled ? "" : " off") }),
      el("td", { text: v.action + (v.rolled_back_to ? " \u2192 v" + v.rolled_back_to : "") }),
      el("td", { text: when }), el("td", { text: v.comment || "" }), el("td", {}, btn)));
  });
}

async function queryBody() {
  const kind = $("mq-kind").value;
  if (kind === "photo") {
    const file = $("mq-photo").files[0];
    if (!file) throw { code: "no_photo", message: "Choose a photo to compare." };
    return { base64: await fileToDataUrl(file) };
  }
  const v = $("mq").value.trim();
  if (!v) throw { code: "empty_query", message: "Type a query or an item id." };
  return kind === "item_id" ? { item_id: v } : { query: v };
}

async function compare() {
  showError($("error"), null);
  $("explain").replaceChildren();
  let body;
  try { body = await queryBody(); } catch (err) { showError($("error"), err); return; }
  body.size = 20; body.explain = true; body.candidate = candidate();
  $("compare-btn").disabled = true;
  try {
    last = await admin("/admin/preview", { method: "POST", json: body });
    render(last);
  } catch (err) {
    showError($("error"), err);
    if (err.status === 401) signOut();
  } finally {
    $("compare-btn").disabled = false;
  }
}

function row(h, i, side, mark) {
  const title = h.title || h.id;
  const src = h.image_urls && h.image_urls.length ? thumb(h.image_urls[0], 80) : null;
  const li = el("li", { "data-id": h.id, tabindex: "0", class: "hit" + (mark ? " " + mark.cls : ""), "aria-label": (i + 1) + ". " + title + (mark ? ", " + mark.label : "") },
    el("span", { class: "rank", text: String(i + 1) }),
    src ? el("img", { src, alt: title, width: "48", height: "64" }) : el("span", { class: "noimg", text: "" }),
    el("span", { class: "title", text: title }),
    mark ? el("span", { class: "mark", "aria-hidden": "true", text: mark.text }) : null);
  const open = () => explain(h.id);
  li.addEventListener("click", open);
  li.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } });
  return li;
}

function render(res) {
  const liveIds = res.live.hits.map((h) => h.id);
  const candIds = res.candidate.hits.map((h) => h.id);
  $("live").replaceChildren(...res.live.hits.map((h, i) => row(h, i, "live", candIds.includes(h.id) ? null : { cls: "dropped", text: "dropped", label: "dropped from the candidate" })));
  $("cand").replaceChildren(...res.candidate.hits.map((h, i) => {
    const before = liveIds.indexOf(h.id);
    let mark = null;
    if (before < 0) mark = { cls: "new", text: "new", label: "new in the candidate" };
    else if (before > i) mark = { cls: "up", text: "\u25b2" + (before - i), label: "up " + (before - i) };
    else if (before < i) mark = { cls: "down", text: "\u25bc" + (i - before), label: "down " + (i - before) };
    return row(h, i, "cand", mark);
  }));
  const dropped = res.live.hits.filter((h) => !candIds.includes(h.id));
  if (dropped.length) $("cand").append(el("li", { class: "dropped-note", text: "Dropped: " + dropped.map((h) => h.title || h.id).join(", ") }));
  $("cand-title").textContent = "Candidate (" + res.candidate.strategy + ")";
  $("live-title").textContent = "Live (" + res.live.strategy + ")";
}

function explainTable(label, hit, rank) {
  if (!hit) return el("div", {}, el("h3", { text: label }), el("p", { text: "not in this ranking" }));
  const rows = Object.entries(hit.explain || {}).filter(([, v]) => v !== null && v !== undefined);
  const table = el("table", {}, el("caption", { text: label + ": rank " + (rank + 1) + ", score " + hit.score.toFixed(4) }));
  for (const [k, v] of rows) table.append(el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: typeof v === "object" ? JSON.stringify(v) : String(v) })));
  return table;
}

function explain(id) {
  if (!last) return;
  const li = last.live.hits.findIndex((h) => h.id === id);
  const ci = last.candidate.hits.findIndex((h) => h.id === id);
  const hit = last.live.hits[li] || last.candidate.hits[ci];
  $("explain").replaceChildren(el("h2", { text: "Explain: " + (hit.title || id) + " (" + id + ")" }),
    el("div", { class: "explain-cols" }, explainTable("Live", last.live.hits[li], li), explainTable("Candidate", last.candidate.hits[ci], ci)));
}

async function save(ev) {
  ev.preventDefault();
  const c = candidate();
  try {
    const v = await admin("/admin/weights", { method: "PUT", json: { hybrid: c.hybrid, rerank: c.rerank, comment: $("note").value.trim() || null } });
    $("note").value = "";
    $("live-info").textContent = "Saved version " + v.version;
    await loadLive(); await loadHistory();
    if (last) compare();
  } catch (err) { showError($("error"), err); }
}

async function rollback(version) {
  try {
    await admin("/admin/weights/rollback", { method: "POST", json: { version, comment: $("note").value.trim() || null } });
    await loadLive(); await loadHistory();
    if (last) compare();
  } catch (err) { showError($("error"), err); }
}

function signOut() {
  sessionStorage.removeItem(KEY);
  $("workspace").hidden = true; $("login").hidden = false; $("admin-key").value = "";
}

function savedQueries() {
  try { return JSON.parse(localStorage.getItem(SAVED)) || DEFAULT_QUERIES.slice(); } catch (e) { return DEFAULT_QUERIES.slice(); }
}
function fillSaved(selected) {
  const qs = savedQueries();
  $("saved").replaceChildren(...qs.map((q, i) => el("option", { value: String(i), text: (q.kind === "item_id" ? "item " : "") + q.value })));
  if (selected !== undefined) $("saved").value = String(selected);
}
function pickSaved(i) {
  const qs = savedQueries();
  if (!qs.length) return;
  i = (i + qs.length) % qs.length;
  $("saved").value = String(i);
  $("mq-kind").value = qs[i].kind; kindChanged();
  $("mq").value = qs[i].value;
  compare();
}
function kindChanged() {
  const photo = $("mq-kind").value === "photo";
  $("mq-photo").hidden = !photo; $("mq").hidden = photo;
}

function init() {
  $("login").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("admin-key").value); });
  $("logout").addEventListener("click", signOut);
  $("query-form").addEventListener("submit", (ev) => { ev.preventDefault(); compare(); });
  $("mq-kind").addEventListener("change", kindChanged);
  $("w-bm25").addEventListener("input", () => setWeights(Number($("w-bm25").value)));
  $("w-vector").addEventListener("input", () => setWeights(1 - Number($("w-vector").value)));
  $("ltr").addEventListener("input", () => setLtr($("ltr").value));
  for (const id of ["w-bm25", "w-vector", "ltr", "ltr-on", "depth"]) $(id).addEventListener("change", () => { if (last) compare(); });
  $("save-form").addEventListener("submit", save);
  $("saved").addEventListener("change", () => pickSaved(Number($("saved").value)));
  $("saved-prev").addEventListener("click", () => pickSaved(Number($("saved").value) - 1));
  $("saved-next").addEventListener("click", () => pickSaved(Number($("saved").value) + 1));
  $("saved-add").addEventListener("click", () => {
    const qs = savedQueries(); const v = $("mq").value.trim();
    if (!v || $("mq-kind").value === "photo") return;
    qs.push({ kind: $("mq-kind").value, value: v }); localStorage.setItem(SAVED, JSON.stringify(qs)); fillSaved(qs.length - 1);
  });
  $("saved-remove").addEventListener("click", () => {
    const qs = savedQueries(); qs.splice(Number($("saved").value), 1); localStorage.setItem(SAVED, JSON.stringify(qs)); fillSaved(0);
  });
  fillSaved(0);
  setWeights(0.4); setLtr(0.5);
  if (key()) signIn(key());
}

init();
