// The shopper page: words, photo (picker or drop), "this but in ...", filters, results,
// more like this, complete the look, pagination. Calls the JSON API of this service.
"use strict";

const PAGE = 12;
const MAX = 96; // the API answers at most 100 hits per request
const $ = (id) => document.getElementById(id);
const state = { kind: null, query: "", file: null, item: null, page: 0, hits: [], more: false };

function filters() {
  const f = {};
  for (const sel of document.querySelectorAll("select[data-filter]")) {
    if (sel.value) f[sel.dataset.filter] = [sel.value];
  }
  const min = $("f-min").value, max = $("f-max").value;
  if (min !== "") f.min_price = Number(min);
  if (max !== "") f.max_price = Number(max);
  if ($("f-stock").checked) f.in_stock = true;
  return f;
}

function words(id) {
  return $(id).value.split(",").map((s) => s.trim()).filter(Boolean);
}

function form(file, fields) {
  const fd = new FormData();
  fd.append("file", file, file.name || "photo");
  for (const [k, v] of Object.entries(fields)) {
    if (Array.isArray(v)) v.forEach((x) => fd.append(k, x));
    else fd.append(k, typeof v === "object" ? JSON.stringify(v) : String(v));
  }
  return fd;
}

function request(size) {
  const f = filters();
  const wanted = words("wanted"), unwanted = words("unwanted");
  switch (state.kind) {
    case "text":
      return api("/search/text", { method: "POST", json: { query: state.query, size, filters: f } });
    case "photo":
      return api("/search/image", { method: "POST", body: form(state.file, { size, filters: f }) });
    case "item":
      return api("/search/image", { method: "POST", json: { item_id: state.item.id, size, filters: f } });
    case "compose-photo":
      return api("/search/compose", { method: "POST", body: form(state.file, { size, filters: f, wanted, unwanted }) });
    case "compose-item":
      return api("/search/compose", { method: "POST", json: { item_id: state.item.id, size, filters: f, wanted, unwanted } });
  }
  return Promise.resolve(null);
}

async function run(page) {
  if (!state.kind) return;
  state.page = page || 0;
  const size = Math.min(MAX, (state.page + 1) * PAGE + 1);
  $("status").textContent = "Searching\u2026";
  showError($("error"), null);
  $("results").setAttribute("aria-busy", "true");
  try {
    const res = await request(size);
    state.hits = res.hits;
    state.more = res.hits.length > (state.page + 1) * PAGE && (state.page + 1) * PAGE < MAX;
    render(res);
  } catch (err) {
    state.hits = [];
    $("results").replaceChildren();
    $("status").textContent = "";
    showError($("error"), err);
    pager();
  } finally {
    $("results").removeAttribute("aria-busy");
  }
}

function describe() {
  switch (state.kind) {
    case "text": return "\u201c" + state.query + "\u201d";
    case "photo": return "your photo";
    case "item": return "more like " + (state.item.title || state.item.id);
    default: {
      const base = state.kind === "compose-photo" ? "your photo" : (state.item.title || state.item.id);
      const w = words("wanted"), u = words("unwanted");
      return base + (w.length ? " but " + w.join(", ") : "") + (u.length ? ", not " + u.join(", ") : "");
    }
  }
}

function render(res) {
  const start = state.page * PAGE;
  const hits = state.hits.slice(start, start + PAGE);
  const list = $("results");
  list.replaceChildren();
  if (!hits.length) {
    $("status").textContent = "";
    list.append(el("li", { class: "empty", text: "No products match " + describe() + ". Try other words or fewer filters." }));
  } else {
    $("status").textContent = "Results " + (start + 1) + "\u2013" + (start + hits.length) + " for " + describe() + (res.category && res.category.label ? " (type: " + res.category.label + ")" : "");
  }
  hits.forEach((h) => list.append(card(h)));
  pager();
}

function card(h) {
  const title = h.title || ("Product " + h.id);
  const src = h.image_urls && h.image_urls.length ? thumb(h.image_urls[0], 300) : null;
  const img = src ? el("img", { src, alt: title, loading: "lazy", width: "300", height: "400" }) : el("div", { class: "noimg", text: "no photo" });
  return el("li", { class: "card", "data-id": h.id },
    img,
    el("h3", { class: "title", text: title }),
    el("p", { class: "meta", text: [h.article_type, h.base_colour, h.gender].filter(Boolean).join(" \u00b7 ") }),
    el("p", { class: "price", text: price(h) + (h.in_stock === false ? " \u00b7 out of stock" : "") }),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "more", "aria-label": "More like " + title, onclick: () => moreLike(h) }, "More like this"),
      el("button", { type: "button", class: "complete", "aria-label": "Complete the look with " + title, onclick: () => completeLook(h) }, "Complete the look")));
}

function pager() {
  $("prev").disabled = state.page === 0 || !state.hits.length;
  $("next").disabled = !state.more;
  $("page-no").textContent = state.hits.length ? "Page " + (state.page + 1) : "";
}

function setBase(label) {
  $("base-name").textContent = label ? "Applies to: " + label : "";
}

function moreLike(h) {
  state.kind = "item";
  state.item = h;
  setBase(h.title || h.id);
  run(0);
}

function reasonText(r) {
  if (!r) return "";
  const parts = [];
  if (r.look_id) parts.push("worn together in look " + r.look_id + (r.similar_item ? " (with a similar item " + r.similar_item + ")" : ""));
  if (r.model_score !== undefined) parts.push("compatibility " + r.model_score.toFixed(2));
  return parts.join("; ") || r.source || "";
}

async function completeLook(h) {
  const dlg = $("look");
  $("look-title").textContent = "Complete the look: " + (h.title || h.id);
  $("look-body").replaceChildren(el("p", { text: "Loading\u2026" }));
  showError($("look-error"), null);
  dlg.showModal();
  try {
    const f = filters();
    const body = { item_id: h.id, size: 4, filters: {} };
    if (f.in_stock) body.filters.in_stock = true;
    if (f.min_price !== undefined) body.filters.min_price = f.min_price;
    if (f.max_price !== undefined) body.filters.max_price = f.max_price;
    const res = await api("/complete-the-look", { method: "POST", json: body });
    const slots = Object.entries(res.slots || {});
    const wrap = el("div", { class: "slots" });
    for (const [slot, items] of slots) {
      const ul = el("ul", { class: "slot-items" });
      if (!items.length) ul.append(el("li", { class: "empty", text: "nothing suitable" }));
      for (const it of items) {
        const title = it.title || it.id;
        const src = it.image_urls && it.image_urls.length ? thumb(it.image_urls[0], 160) : null;
        ul.append(el("li", { class: "slot-item" },
          src ? el("img", { src, alt: title, width: "120", height: "160" }) : el("div", { class: "noimg", text: "no photo" }),
          el("span", { class: "title", text: title }),
          el("span", { class: "price", text: price(it) }),
          el("span", { class: "reason", text: reasonText(it.reason) })));
      }
      wrap.append(el("section", { class: "slot", "data-slot": slot, "aria-label": slot }, el("h3", { text: slot }), ul));
    }
    $("look-body").replaceChildren(slots.length ? wrap : el("p", { class: "empty", text: "No complementary items found for this product." }));
  } catch (err) {
    $("look-body").replaceChildren();
    showError($("look-error"), err);
  }
}

function choosePhoto(file) {
  if (!file) return;
  state.file = file;
  state.kind = "photo";
  $("photo-name").textContent = file.name ? "Photo: " + file.name : "Photo chosen";
  $("photo-clear").hidden = false;
  setBase("your photo");
  run(0);
}

function init() {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("q").value.trim();
    if (!q) { showError($("error"), { code: "empty_query", message: "Type what you are looking for." }); return; }
    state.kind = "text";
    state.query = q;
    run(0);
  });
  $("photo").addEventListener("change", (ev) => choosePhoto(ev.target.files[0]));
  $("photo-clear").addEventListener("click", () => {
    state.file = null; $("photo").value = ""; $("photo-name").textContent = ""; $("photo-clear").hidden = true;
    if (state.kind && state.kind.endsWith("photo")) { state.kind = null; setBase(""); }
  });
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    const file = ev.dataTransfer && ev.dataTransfer.files[0];
    if (file) choosePhoto(file);
  });
  drop.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("photo").click(); } });
  $("compose-btn").addEventListener("click", () => {
    if (state.file && (state.kind === "photo" || state.kind === "compose-photo" || !state.item)) state.kind = "compose-photo";
    else if (state.item) state.kind = "compose-item";
    else { showError($("error"), { code: "no_base", message: "Choose a photo or click \u201cMore like this\u201d on a product first." }); return; }
    run(0);
  });
  for (const c of document.querySelectorAll(".filters select, .filters input")) c.addEventListener("change", () => run(0));
  $("prev").addEventListener("click", () => { if (state.page > 0) { state.page -= 1; render({}); } });
  $("next").addEventListener("click", () => run(state.page + 1));
  $("look-close").addEventListener("click", () => $("look").close());
  $("status").textContent = "Search with words or a photo.";
}

init();
