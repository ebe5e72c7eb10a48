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
const knownLanguages = new Set();  // the codes of /api/languages, once loaded

// the index's "videos" are sentences embedded as frames (the Multi30K proxy): no pictures, no time to show
let textFrames = false;

async function loadAbout() {
  // Which index and model this page searches (from /api/health), said plainly.
  try {
    const response = await fetch("/api/health");
    if (!response.ok) return;
    const health = await response.json();
    textFrames = health.frames === "text";
    const about = document.getElementById("about");
    const what = textFrames ? "items" : "videos";
    let line = `Searching ${Number(health.videos || 0).toLocaleString("en")} ${what}`;
    if (health.index) line += ` of the index “${health.index}”`;
    if (health.model) line += ` with the model “${health.model}”`;
    about.textContent = line + (health.notice ? `. Note: ${health.notice}.` : "");
    about.hidden = false;
  } catch (err) {
    /* optional */
  }
}

async function loadLanguages() {
  try {
    const response = await fetch("/api/languages");
    if (!response.ok) return;
    const languages = await response.json();
    const chosen = langSelect.value;
    for (const code of Object.keys(languages)) knownLanguages.add(code);
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
      select.addEventListener("change", rerun);
      filterBox.append(select);
    }
    filterBox.dataset.loaded = "true";
  } catch (err) {
    /* filters are optional: searching works without them */
  }
}

// a changed filter or language re-runs the search shown (nothing to re-run before a query is typed)
function rerun() {
  if (input.value.trim()) form.requestSubmit();
}

// -- results --------------------------------------------------------------------------------------------------
function isText(item) {
  return textFrames && !item.video_url && !item.poster_url;
}

// what a card is called: the metadata's title, caption or description, else (an item of text) its first caption,
// else its id
function titleOf(item) {
  const meta = item.metadata || {};
  for (const key of ["title", "caption", "description"]) {
    if (typeof meta[key] === "string" && meta[key].trim()) return meta[key].trim();
  }
  const captions = Array.isArray(meta.captions) ? meta.captions : [];
  if (isText(item) && captions.length) return captions[0];
  return item.video_id;
}

function playFrom(card, item) {
  const thumb = card.querySelector(".thumb");
  const start = Number(card.dataset.start || 0);
  let video = thumb.querySelector("video");
  if (!video) {
    video = document.createElement("video");
    video.src = item.video_url + (item.moment || start ? `#t=${start}` : "");
    const still = stillAt(item, start);
    if (still) video.poster = still;
    video.preload = "metadata";
    video.controls = true;
    video.muted = true;
    video.playsInline = true;
    thumb.querySelector("img")?.remove();
    thumb.prepend(video);
  }
  video.controls = true;
  if (!video.dataset.tracked) {
    video.dataset.tracked = "true";
    video.addEventListener("timeupdate", () => movePlayhead(card, video.currentTime));
  }
  document.querySelectorAll(".card.playing").forEach((c) => {
    c.classList.remove("playing");
    const v = c.querySelector("video");
    if (v && v !== video) v.pause();
  });
  card.classList.add("playing");
  const seekAndPlay = () => {
    video.currentTime = start;
    const played = video.play();
    if (played && played.catch) played.catch(() => {});
  };
  if (video.readyState >= 1) seekAndPlay();
  else video.addEventListener("loadedmetadata", seekAndPlay, { once: true });
}

// -- moments on a timeline ------------------------------------------------------------------------------------
const MORE_MOMENTS = 10; // moments asked for by "More moments in this video"
const timelines = new WeakMap(); // card -> { item, duration, moments (best first), current moment or null }

function durationOf(item) {
  const seconds = Number((item.metadata || {}).duration);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
}

function momentsOf(item) {
  if (Array.isArray(item.moments)) return item.moments;
  return item.moment ? [item.moment] : [];
}

function span(m) {
  return `${fmt(m.start)}–${fmt(m.end)}`;
}

function sameMoment(a, b) {
  return !!a && !!b && a.start === b.start && a.end === b.end;
}

// the poster still at `seconds` (the server's poster_url with another t), or null when the item has no stills
function stillAt(item, seconds) {
  if (!item.poster_url) return null;
  const url = new URL(item.poster_url, window.location.href);
  url.searchParams.set("t", String(seconds));
  return url.pathname + url.search;
}

function percent(state, seconds) {
  return Math.round(Math.min(100, Math.max(0, (seconds / state.duration) * 100)) * 1000) / 1000;
}

// a said moment (found by its subtitle or transcript line, alone or with the pictures) and its line
function isSaid(m) {
  return !!m && (m.found_by === "said" || m.found_by === "both") && !!m.text;
}

function momentLabel(state, m) {
  const scored = Number.isFinite(m.score) ? `, score ${m.score.toFixed(2)}` : "";
  const best = (sameMoment(m, state.item.moment) ? ", best match" : "") + scored;
  const said = isSaid(m) ? `, said: “${m.text}”` : "";
  if (!state.item.video_url) return `moment ${span(m)}${best}${said}: open for details`;
  return `play from ${fmt(m.start)} (moment ${span(m)}${best}${said})`;
}

// the line said in a moment, under the card's poster (the best said moment's until another is chosen)
function showSaidLine(card, m) {
  let line = card.querySelector(".said-line");
  if (!isSaid(m)) {
    if (line) line.hidden = true;
    return;
  }
  if (!line) {
    line = document.createElement("p");
    line.className = "said-line";
    line.append(Object.assign(document.createElement("span"), { className: "said-when" }),
                Object.assign(document.createElement("q"), { className: "said-text" }));
    (card.querySelector(".timeline") || card.querySelector(".thumb")).after(line);
  }
  line.hidden = false;
  line.querySelector(".said-when").textContent = `said at ${span(m)}`;
  line.querySelector(".said-text").textContent = m.text;
  line.lang = m.lang || "";
}

function momentButton(card, state, m, className, text) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className + (sameMoment(m, state.item.moment) ? " best" : "") +
    (isSaid(m) ? ` ${m.found_by === "both" ? "both" : "said"}` : "");
  b.dataset.start = String(m.start);
  b.dataset.end = String(m.end);
  const label = momentLabel(state, m);
  b.title = label;
  b.setAttribute("aria-label", label);
  if (text) b.textContent = text;
  if (sameMoment(m, state.current)) {
    b.classList.add("current");
    b.setAttribute("aria-current", "time");
  }
  b.addEventListener("click", () => showMoment(card, m));
  return b;
}

// the marks of the card's moments (in time order, so Tab walks the video from its start) and the playhead
function drawTimeline(card) {
  const state = timelines.get(card);
  let box = card.querySelector(".timeline");
  if (!box) {
    box = document.createElement("div");
    box.className = "timeline";
    box.setAttribute("role", "group");
    box.append(Object.assign(document.createElement("div"), { className: "track" }));
    card.querySelector(".thumb").after(box);
  }
  box.setAttribute("aria-label", `moments of ${titleOf(state.item)} (${fmt(state.duration)} long)`);
  const track = box.querySelector(".track");
  const playhead = track.querySelector(".playhead") ||
    Object.assign(document.createElement("span"), { className: "playhead", hidden: true });
  const marks = [...state.moments].sort((a, b) => a.start - b.start || a.end - b.end).map((m) => {
    const mark = momentButton(card, state, m, "mark");
    const left = percent(state, m.start);
    mark.style.left = `${left}%`;
    mark.style.width = `${Math.max(0, percent(state, m.end) - left)}%`;
    return mark;
  });
  track.replaceChildren(...marks, playhead);
  const list = card.querySelector(".moment-list");
  if (list) {
    list.replaceChildren(...[...state.moments].sort((a, b) => a.start - b.start || a.end - b.end).map((m) => {
      const li = document.createElement("li");
      const score = Number.isFinite(m.score) ? ` · ${m.score.toFixed(2)}` : "";
      li.append(momentButton(card, state, m, "time", `${span(m)}${score}`));
      return li;
    }));
  }
}

function movePlayhead(card, seconds) {
  const state = timelines.get(card);
  const playhead = card.querySelector(".timeline .playhead");
  if (!state || !playhead) return;
  playhead.style.left = `${percent(state, seconds)}%`;
  playhead.hidden = false;
}

// a click on a mark (or a listed time): the card plays from that moment and shows its still (an item without a
// file opens its details at that moment)
function showMoment(card, m) {
  const state = timelines.get(card);
  state.current = m;
  card.dataset.start = String(m.start);
  card.querySelectorAll(".timeline .mark, .moment-list button").forEach((b) => {
    const here = Number(b.dataset.start) === m.start && Number(b.dataset.end) === m.end;
    b.classList.toggle("current", here);
    if (here) b.setAttribute("aria-current", "time");
    else b.removeAttribute("aria-current");
  });
  if (isSaid(m)) showSaidLine(card, m);
  const still = stillAt(state.item, m.start);
  if (still) {
    const img = card.querySelector(".thumb img");
    if (img) {
      img.src = still;
      img.alt = `frame of ${titleOf(state.item)} at ${fmt(m.start)}`;
    }
    const video = card.querySelector(".thumb video");
    if (video) video.poster = still;
  }
  if (state.item.video_url) playFrom(card, state.item);
  else if (!still) openDetails(state.item, m);
}

function addTimeline(card, item, p) {
  if (isText(item)) return;  // sentences as frames: no time to show moments on
  const state = { item, p, duration: durationOf(item), moments: [...momentsOf(item)], current: null };
  timelines.set(card, state);
  if (state.duration && state.moments.length) drawTimeline(card);
  if (item.video_url && state.moments.length && p) {
    const more = document.createElement("button");
    more.type = "button";
    more.className = "more-moments";
    more.textContent = "More moments in this video";
    more.addEventListener("click", () => loadMoments(card, more));
    card.append(more);
  }
}

async function loadMoments(card, more) {
  const state = timelines.get(card);
  const label = more.textContent;
  more.disabled = true;
  more.textContent = "Finding moments…";
  card.setAttribute("aria-busy", "true");
  showError("");
  // distinct moments: none overlaps another (windows inside a moment belong to it, as in search)
  const body = { video_id: state.item.video_id, query: state.p.q, k: MORE_MOMENTS, iou: 0 };
  if (state.p.lang) body.lang = state.p.lang;
  const failed = (message) => {
    showError(`Moments of ${titleOf(state.item)}: ${message}`);
    more.disabled = false;
    more.textContent = label;
  };
  try {
    const response = await fetch("/api/moments", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) {
      failed(payload.error || `the server could not find moments (${response.status})`);
      return;
    }
    const known = new Set(state.moments.map((m) => `${m.start}-${m.end}`));
    const added = (payload.moments || []).filter((m) => !known.has(`${m.start}-${m.end}`));
    state.moments.push(...added);
    if (!state.duration) state.duration = Number(payload.duration) || 0;
    const list = document.createElement("ul");
    list.className = "moment-list";
    list.setAttribute("aria-label", `moments of ${titleOf(state.item)}`);
    const note = Object.assign(document.createElement("p"), {
      className: "moment-note",
      textContent: added.length ? `${state.moments.length} moments in this video` : "No other moments in this video.",
    });
    more.replaceWith(note, list);
    if (state.duration) drawTimeline(card);
  } catch (err) {
    failed(`the server did not answer: ${err}`);
  } finally {
    card.removeAttribute("aria-busy");
  }
}

function openDetails(item, moment = item.moment) {
  const meta = item.metadata || {};
  document.getElementById("details-title").textContent = titleOf(item);
  const captions = document.getElementById("details-captions");
  captions.replaceChildren(...(meta.captions || []).map((c) => Object.assign(document.createElement("li"),
                                                                              { textContent: c })));
  const list = document.getElementById("details-meta");
  const rows = { "video id": item.video_id, score: item.score.toFixed(3), ...meta };
  delete rows.captions;
  if (moment) rows.moment = `${fmt(moment.start)}–${fmt(moment.end)}`;
  if (!item.video_url) rows.file = "none: this item has no video file on the server";
  list.replaceChildren(...Object.entries(rows).flatMap(([k, v]) => [
    Object.assign(document.createElement("dt"), { textContent: k }),
    Object.assign(document.createElement("dd"), { textContent: Array.isArray(v) ? v.join(", ") : String(v) }),
  ]));
  if (details.showModal) details.showModal();
  else details.setAttribute("open", "");
}

function renderCard(item, p) {
  const meta = item.metadata || {};
  const captions = [...new Set(Array.isArray(meta.captions) ? meta.captions : [])];  // each once
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
    text.textContent = captions.find((c) => c !== titleOf(item)) || "no video file: open for details";
    thumb.append(text);
  }
  const badges = [];
  if (item.video_url) badges.push(["play", item.moment ? `▶ ${fmt(item.moment.start)}–${fmt(item.moment.end)}` : "▶"]);
  else badges.push(["kind", "text only"]);
  // a text-only item has no length to show (its "duration" counts feature rows, not seconds of video)
  if (item.video_url && typeof meta.duration === "number") badges.push(["duration", fmt(meta.duration)]);
  for (const [cls, text] of badges) {
    thumb.append(Object.assign(document.createElement("span"), { className: `badge ${cls}`, textContent: text }));
  }
  card.append(thumb);
  const title = document.createElement("h2");
  title.textContent = `${item.rank}. ${titleOf(item)}`;
  card.append(title);
  // the card shows each caption once: not the one that is its title, nor (text-only) the one in its thumbnail
  const others = captions.filter((c) => c !== titleOf(item));
  const more = item.video_url ? others.slice(0, 2) : others.slice(1, 3);
  if (more.length) {
    const line = document.createElement("p");
    line.className = "captions";
    line.textContent = more.join(" · ");
    card.append(line);
  }
  const line = document.createElement("div");
  line.className = "meta";
  const score = Object.assign(document.createElement("span"), { className: "score",
                                                                 textContent: `score ${item.score.toFixed(3)}` });
  const facts = [];
  if (titleOf(item) !== item.video_id) facts.push(item.video_id);
  for (const key of ["dataset", "split", "tags"]) {
    if (meta[key] !== undefined) facts.push(Array.isArray(meta[key]) ? meta[key].join(", ") : String(meta[key]));
  }
  line.append(score, document.createTextNode(facts.length ? ` · ${facts.join(" · ")}` : ""));
  card.append(line);
  addTimeline(card, item, p);
  showSaidLine(card, isSaid(item.moment) ? item.moment : momentsOf(item).find(isSaid));
  const open = () => (item.video_url ? playFrom(card, item) : openDetails(item));
  card.addEventListener("click", (e) => {
    // the card's own buttons act alone, and the controls of its playing video are the video's
    if (e.target.closest("button") || (e.target.closest("video") && card.classList.contains("playing"))) return;
    open();
  });
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
  await aboutLoaded;  // whether the items are videos or text decides how cards look
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
      if (p.lang) await languagesLoaded;
      const unknownLanguage = p.lang && knownLanguages.size && !knownLanguages.has(p.lang);
      showError(unknownLanguage
        ? `"${p.lang}" is not a language this server knows: choose one from the language list, or "any language".`
        : payload.error || `search failed (${response.status})`);
      return;
    }
    const cards = payload.results.map((item) => renderCard(item, p));
    if (offset) results.append(...cards);
    else results.replaceChildren(...cards);
    current = { p, shown: offset + payload.results.length };
    const none = current.shown === 0 ? "No video matches; try other words or fewer filters." : "";
    const of = Number.isInteger(payload.total) ? ` of ${payload.total.toLocaleString("en")} ${textFrames ? "items" : "videos"}` : "";
    statusBox.textContent = none || `${current.shown} results${of} (${payload.took_ms.toFixed(0)} ms)`;
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

const languagesLoaded = loadLanguages();
const aboutLoaded = loadAbout();
form.addEventListener("submit", submit);
langSelect.addEventListener("change", rerun);
document.querySelectorAll("#examples .example").forEach((button) => button.addEventListener("click", () => {
  input.value = button.textContent;
  form.requestSubmit();
}));
moreButton.addEventListener("click", () => { if (current && !busy) run(current.p, current.shown); });
window.addEventListener("popstate", fromURL);
fromURL();
input.focus();
loadFilters();
