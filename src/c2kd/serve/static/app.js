// The c2kd search page: query -> /api/search (with moments) -> result cards playing from the matched moment.
"use strict";

const form = document.getElementById("search-form");
const input = document.getElementById("q");
const langSelect = document.getElementById("lang");
const kInput = document.getElementById("k");
const statusBox = document.getElementById("status");
const errorBox = document.getElementById("error");
const results = document.getElementById("results");

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

async function loadLanguages() {
  try {
    const response = await fetch("/api/languages");
    if (!response.ok) return;
    const languages = await response.json();
    for (const [code, name] of Object.entries(languages).sort((a, b) => a[1].localeCompare(b[1]))) {
      const option = document.createElement("option");
      option.value = code;
      option.textContent = `${name} (${code})`;
      langSelect.appendChild(option);
    }
  } catch (err) {
    /* the hint is optional: searching works without the list */
  }
}

function fmt(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function playFrom(card) {
  const video = card.querySelector("video");
  if (!video) return;
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

function renderCard(item) {
  const card = document.createElement("article");
  card.className = "card";
  card.dataset.videoId = item.video_id;
  const start = item.moment ? item.moment.start : 0;
  card.dataset.start = String(start);
  if (item.video_url) {
    const video = document.createElement("video");
    const fragment = item.moment ? `#t=${item.moment.start}` : "";
    video.src = item.video_url + fragment;
    video.preload = "metadata";
    video.controls = true;
    video.muted = true;
    video.playsInline = true;
    card.appendChild(video);
  } else {
    const none = document.createElement("div");
    none.className = "novideo";
    none.textContent = "no video file";
    card.appendChild(none);
  }
  const title = document.createElement("h2");
  title.textContent = `${item.rank}. ${item.video_id}`;
  card.appendChild(title);
  const meta = document.createElement("div");
  meta.className = "meta";
  const moment = item.moment ? ` · moment ${fmt(item.moment.start)}–${fmt(item.moment.end)}` : "";
  const tags = Object.entries(item.metadata || {})
    .filter(([k]) => ["dataset", "split", "tags"].includes(k))
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`).join(" · ");
  meta.innerHTML = "";
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = `score ${item.score.toFixed(3)}`;
  meta.appendChild(score);
  meta.appendChild(document.createTextNode(moment + (tags ? ` · ${tags}` : "")));
  card.appendChild(meta);
  card.addEventListener("click", () => playFrom(card));
  return card;
}

async function search(event) {
  if (event) event.preventDefault();
  showError("");
  const query = input.value.trim();
  if (!query) {
    showError("Type a few words describing the video.");
    return;
  }
  const body = { query, k: Number(kInput.value) || 10, moments: true };
  if (langSelect.value) body.lang = langSelect.value;
  statusBox.textContent = "Searching…";
  results.replaceChildren();
  try {
    const response = await fetch("/api/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) {
      statusBox.textContent = "";
      showError(payload.error || `search failed (${response.status})`);
      return;
    }
    statusBox.textContent = `${payload.results.length} results in ${payload.took_ms.toFixed(0)} ms`;
    results.replaceChildren(...payload.results.map(renderCard));
  } catch (err) {
    statusBox.textContent = "";
    showError(`The server did not answer: ${err}`);
  }
}

form.addEventListener("submit", search);
loadLanguages();
