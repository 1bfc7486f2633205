// Shared helpers of the web pages: calling the JSON API and showing its errors.
"use strict";

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : "HTTP " + status);
    this.status = status;
    this.code = (body && body.code) || "http_error";
    this.details = (body && body.details) || {};
  }
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = Object.assign({}, opts.headers || {});
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers["Content-Type"] = "application/json";
    delete opts.json;
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, { code: "network_error", message: "the service cannot be reached", details: { error: String(e) } });
  }
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { code: "bad_response", message: text.slice(0, 200) }; }
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function showError(box, err) {
  box.replaceChildren();
  if (!err) { box.hidden = true; return; }
  const code = err.code || "error";
  box.append(el("strong", { class: "code", text: code }), " ", el("span", { class: "message", text: err.message || String(err) }));
  const details = err.details || {};
  const keys = Object.keys(details);
  if (keys.length) {
    const dl = el("dl", { class: "details" });
    for (const k of keys) {
      const v = details[k];
      dl.append(el("dt", { text: k }), el("dd", { text: typeof v === "string" ? v : JSON.stringify(v) }));
    }
    box.append(dl);
  }
  box.dataset.code = code;
  box.hidden = false;
}

function price(hit) {
  const p = hit.price, d = hit.discounted_price;
  if (p === null || p === undefined) return "";
  if (d !== null && d !== undefined && d < p) return "\u20b9" + d + " (was \u20b9" + p + ")";
  return "\u20b9" + p;
}

function thumb(url, width) {
  return url ? url + (url.includes("?") ? "&" : "?") + "w=" + width : null;
}

function fileToDataUrl(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}
