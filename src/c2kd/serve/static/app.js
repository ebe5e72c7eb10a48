// The c2kd search page. The URL holds the search (?q=&lang=&k=&filter=field=value): it runs on load, every search
// adds a history entry (back and forward re-run it), so a search can be shared or reloaded.
"use strict";

const form = document.getElementById("search-form");
const input = document.getElementById("q");
const langSelect = document.getElementById("lang");
const kInput = document.getElementById("k");
const filterBox = document.getElementById("filters");
const button = document.getElementById("go");
const statusBox = document.getElementById("status");
const errorBox = document.getElementById("error");
const results = document.getElementById("results");
const moreButton = document.getElementById("more");
const details = document.getElementById("details");

const DEFAULT_K = 10;
let busy = false; // one search at a time: submits while one runs are dropped
let pending = null; // a history move made while a search ran: run it next
let current = null; // the search shown: its params and how many results are on the page
let wantedFilters = {}; // field -> value from the URL, applied when the filter controls exist

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function fmt(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// -- the search in the URL ------------------------------------------------------------------------------------
function paramsFromURL() {
  const url = new URLSearchParams(window.location.search);
  const filters = {};
  for (const item of [...url.getAll("filter"), ...url.getAll("filters")]) {
    const at = item.indexOf("=");
    if (at > 0) filters[item.slice(0, at)] = item.slice(at + 1);
  }
  const k = Number(url.get("k"));
  return { q: (url.get("q") || url.get("query") || "").trim(), lang: url.get("lang") || "",
           k: Number.isInteger(k) && k > 0 ? k : DEFAULT_K, filters };
}

function paramsFromForm() {
  const filters = {};
  filterBox.querySelectorAll("select").forEach((s) => { if (s.value) filters[s.dataset.field] = s.value; });
  for (const [field, value] of Object.entries(wantedFilters)) {
    if (!filterBox.querySelector(`select[data-field="${CSS.escape(field)}"]`)) filters[field] = value;
  }
  return { q: input.value.trim(), lang: langSelect.value, k: Number(kInput.value) || DEFAULT_K, filters };
}

function urlFor(p) {
  const url = new URLSearchParams();
  url.set("q", p.q);
  if (p.lang) url.set("lang", p.lang);
  url.set("k", String(p.k));
  for (const [field, value] of Object.entries(p.filters)) url.append("filter", `${field}=${value}`);
  return `${window.location.pathname}?${url}`;
}

function ensureOption(select, value, label) {
  if (value && ![...select.options].some((o) => o.value === value)) {
    select.append(new Option(label || value, value));
  }
}

function applyToForm(p) {
  input.value = p.q;
  ensureOption(langSelect, p.lang);
  langSelect.value = p.lang;
  kInput.value = String(p.k);
  wantedFilters = { ...p.filters };
  filterBox.querySelectorAll("select").forEach((s) => {
    const value = wantedFilters[s.dataset.field] || "";
    ensureOption(s, value);
    s.value = value;
  });
}

// -- controls built from the server ---------------------------------------------------------------------------
async function loadLanguages() {
  try {
    const response = await fetch("/api/languages");
    if (!response.ok) return;
    const languages = await response.json();
    const chosen = langSelect.value;
    for (const [code, name] of Object.entries(languages).sort((a, b) => a[1].localeCompare(b[1]))) {
      const known = [...langSelect.options].find((o) => o.value === code);
      if (known) known.textContent = `${name} (${code})`;
      else langSelect.append(new Option(`${name} (${code})`, code));
    }
    langSelect.value = chosen;
  } catch (err) {
    /* the hint is optional: searching works without the list */
  }
}

async function loadFilters() {
  try {
    const response = await fetch("/api/fields");
    if (!response.ok) return;
    const { fields } = await response.json();
    for (const field of fields.filter((f) => f.filter)) {
      const select = document.createElement("select");
      select.dataset.field = field.name;
      select.id = `filter-${field.name}`;
      select.setAttribute("aria-label", `filter on ${field.name}`);
      select.append(new Option(`${field.name}: any`, ""));
      for (const v of field.values) select.append(new Option(`${field.name}: ${v.value} (${v.count})`, v.value));
      const value = wantedFilters[field.name] || "";
      ensureOption(select, value, `${field.name}: ${value}`);
      select.value = value;
      filterBox.append(select);
    }
    filterBox.dataset.loaded = "true";
  } catch (err) {
    /* filters are optional: searching works without them */
  }
}

// -- results --------------------------------------------------------------------------------------------------
function titleOf(item) {
  const meta = item.metadata || {};
  return meta.title || item.video_id;
}

function playFrom(card, item) {
  const thumb = card.querySelector(".thumb");
  let video = thumb.querySelector("video");
  if (!video) {
    video = document.createElement("video");
    video.src = item.video_url + (item.moment ? `#t=${item.moment.start}` : "");
    video.preload = "metadata";
    video.controls = true;
    video.muted = true;
    video.playsInline = true;
    thumb.querySelector("img")?.remove();
    thumb.prepend(video);
  }
  document.querySelectorAll(".card.playing").forEach((c) => {
    c.classList.remove("playing");
    const v = c.querySelector("video");
    if (v && v !== video) v.pause();
  });
  card.classList.add("playing");
  const start = Number(card.dataset.start || 0);
  const seekAndPlay = () => {
    video.currentTime = start;
    const played = video.play();
    if (played && played.catch) played.catch(() => {});
  };
  if (video.readyState >= 1) seekAndPlay();
  else video.addEventListener("loadedmetadata", seekAndPlay, { once: true });
}

function openDetails(item) {
  const meta = item.metadata || {};
  document.getElementById("details-title").textContent = titleOf(item);
  const captions = document.getElementById("details-captions");
  captions.replaceChildren(...(meta.captions || []).map((c) => Object.assign(document.createElement("li"),
                                                                              { textContent: c })));
  const list = document.getElementById("details-meta");
  const rows = { "video id": item.video_id, score: item.score.toFixed(3), ...meta };
  delete rows.captions;
  if (item.moment) rows.moment = `${fmt(item.moment.start)}–${fmt(item.moment.end)}`;
  if (!item.video_url) rows.file = "none: this item has no video file on the server";
  list.replaceChildren(...Object.entries(rows).flatMap(([k, v]) => [
    Object.assign(document.createElement("dt"), { textContent: k }),
    Object.assign(document.createElement("dd"), { textContent: Array.isArray(v) ? v.join(", ") : String(v) }),
  ]));
  if (details.showModal) details.showModal();
  else details.setAttribute("open", "");
}

function renderCard(item) {
  const meta = item.metadata || {};
  const card = document.createElement("article");
  card.className = "card";
  card.dataset.videoId = item.video_id;
  card.dataset.start = String(item.moment ? item.moment.start : 0);
  card.tabIndex = 0;
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  if (item.poster_url) {
    const img = document.createElement("img");
    img.src = item.poster_url;
    img.alt = `frame of ${titleOf(item)}${item.moment ? ` at ${fmt(item.moment.start)}` : ""}`;
    thumb.append(img);
  } else if (item.video_url) {
    const video = document.createElement("video");
    video.src = item.video_url + (item.moment ? `#t=${item.moment.start}` : "");
    video.preload = "metadata";
    video.muted = true;
    video.playsInline = true;
    thumb.append(video);
  } else {
    const text = document.createElement("div");
    text.className = "textthumb";
    text.textContent = (meta.captions && meta.captions[0]) || "no video file: open for details";
    thumb.append(text);
  }
  const badges = [];
  if (item.video_url) badges.push(["play", item.moment ? `▶ ${fmt(item.moment.start)}–${fmt(item.moment.end)}` : "▶"]);
  else badges.push(["kind", "text only"]);
  if (typeof meta.duration === "number") badges.push(["duration", fmt(meta.duration)]);
  for (const [cls, text] of badges) {
    thumb.append(Object.assign(document.createElement("span"), { className: `badge ${cls}`, textContent: text }));
  }
  card.append(thumb);
  const title = document.createElement("h2");
  title.textContent = `${item.rank}. ${titleOf(item)}`;
  card.append(title);
  if (meta.captions && meta.captions.length) {
    const captions = document.createElement("p");
    captions.className = "captions";
    captions.textContent = meta.captions.slice(0, 2).join(" · ");
    card.append(captions);
  }
  const line = document.createElement("div");
  line.className = "meta";
  const score = Object.assign(document.createElement("span"), { className: "score",
                                                                 textContent: `score ${item.score.toFixed(3)}` });
  const facts = [];
  if (meta.title) facts.push(item.video_id);
  for (const key of ["dataset", "split", "tags"]) {
    if (meta[key] !== undefined) facts.push(Array.isArray(meta[key]) ? meta[key].join(", ") : String(meta[key]));
  }
  line.append(score, document.createTextNode(facts.length ? ` · ${facts.join(" · ")}` : ""));
  card.append(line);
  const open = () => (item.video_url ? playFrom(card, item) : openDetails(item));
  card.addEventListener("click", open);
  card.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === card) open(); });
  return card;
}

// -- searching ------------------------------------------------------------------------------------------------
function setBusy(value) {
  busy = value;
  button.disabled = value;
  moreButton.disabled = value;
  document.body.classList.toggle("busy", value);
  results.setAttribute("aria-busy", String(value));
}

async function run(p, offset = 0) {
  if (busy) return;
  setBusy(true);
  showError("");
  statusBox.textContent = offset ? "Loading more…" : "Searching…";
  const body = { query: p.q, k: p.k, offset, moments: true, filters: {} };
  if (p.lang) body.lang = p.lang;
  for (const [field, value] of Object.entries(p.filters)) body.filters[field] = value.split(",");
  try {
    const response = await fetch("/api/search", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) {
      statusBox.textContent = "";
      showError(payload.error || `search failed (${response.status})`);
      return;
    }
    const cards = payload.results.map(renderCard);
    if (offset) results.append(...cards);
    else results.replaceChildren(...cards);
    current = { p, shown: offset + payload.results.length };
    const none = current.shown === 0 ? "No video matches; try other words or fewer filters." : "";
    statusBox.textContent = none || `${current.shown} results (${payload.took_ms.toFixed(0)} ms)`;
    moreButton.hidden = !payload.more;
  } catch (err) {
    statusBox.textContent = "";
    showError(`The server did not answer: ${err}`);
  } finally {
    setBusy(false);
    if (pending) {
      const next = pending;
      pending = null;
      run(next);
    }
  }
}

function submit(event) {
  event.preventDefault();
  if (busy) return;
  const p = paramsFromForm();
  if (!p.q) {
    showError("Type a few words describing the video.");
    return;
  }
  const url = urlFor(p);
  if (url !== window.location.pathname + window.location.search) history.pushState(null, "", url);
  run(p);
}

function fromURL() {
  const p = paramsFromURL();
  applyToForm(p);
  if (p.q) {
    if (busy) pending = p;
    else run(p);
  } else {
    results.replaceChildren();
    statusBox.textContent = "";
    moreButton.hidden = true;
    current = null;
  }
}

form.addEventListener("submit", submit);
moreButton.addEventListener("click", () => { if (current && !busy) run(current.p, current.shown); });
window.addEventListener("popstate", fromURL);
fromURL();
input.focus();
loadLanguages();
loadFilters();
