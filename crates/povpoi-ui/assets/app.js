// The performer's app: one page per poi, reading and changing everything through the JSON
// API. No framework and no build step: the whole UI must stay small enough for a
// microcontroller to serve, and a poi's own Wi-Fi has no internet to fetch anything from.
"use strict";

const $ = (id) => document.getElementById(id);
const PATTERN_SLOTS = 18;
const SEQUENCE_SLOTS = 5;
const MAX_SEQUENCE_ITEMS = 10;
const TYPES = ["Rainbow", "Wave", "Gradient", "Sparkle", "Fire", "Comet", "Breathing", "Strobe", "Meteor", "Wipe",
  "Plasma", "VU Meter", "Pulse", "Audio Rainbow", "Center Burst", "Audio Sparkle", "Split Spin", "Theater Chase"];

// Builds elements with text only (names come from users and peers, never parsed as HTML).
function h(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) e.append(kid);
  return e;
}

const state = { status: {}, images: [], patterns: [], sequences: [], config: {}, conflicts: [], group: null };

// What this poi serves beyond what every poi does: its device config's `features` (a node
// lists all but "wifi"; a board few). The page shows only what the poi can do.
const has = (feature) => (state.config.features || []).includes(feature);
function showFeatures() {
  for (const e of document.querySelectorAll("[data-feature]")) e.hidden = !has(e.dataset.feature);
}

// ----- messages -----

let toastTimer = null;
function toast(text, bad) {
  const t = $("toast");
  t.textContent = text;
  t.className = bad ? "err" : "";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 6000 : 3000);
}
const fail = (e) => toast(e.message || String(e), true);

// ----- the pairing key: asked for once, kept in this browser, sent as a bearer token -----

const KEY = "povpoiKey";
const savedKey = () => localStorage.getItem(KEY) || "";
const auth = () => (savedKey() ? { authorization: "Bearer " + savedKey() } : {});
let keyAsk = null;
let keyWaiters = [];
// Every request refused for want of the key waits on this one dialog, so it opens once.
function askKey(wrong) {
  if (keyAsk) return keyAsk;
  keyAsk = new Promise((resolve) => {
    const d = $("keydialog");
    $("keywhy").textContent = wrong
      ? "That key was not accepted. Enter the pairing key set on this poi."
      : "This poi's group has a pairing key. Enter it once; this browser keeps it.";
    $("keyinput").value = "";
    const done = (ok) => {
      d.close();
      $("keyask").onsubmit = null;
      $("keycancel").onclick = null;
      keyAsk = null;
      if (ok) { keyWaiters.forEach((w) => w()); keyWaiters = []; }
      resolve(ok);
    };
    $("keyask").onsubmit = (ev) => {
      ev.preventDefault();
      const key = $("keyinput").value.trim();
      if (!key) return;
      localStorage.setItem(KEY, key);
      done(true);
    };
    $("keycancel").onclick = () => done(false);
    d.showModal();
  });
  return keyAsk;
}
// Resolves when a key is entered (the event stream waits here instead of retrying).
const keyEntered = () => new Promise((resolve) => keyWaiters.push(resolve));

// A board answers three connections at a time, its peers' sessions among them (a node has
// no such limit, and an event stream): to one, this page sends two requests at most at
// once, each read whole before the next goes.
const TURNS = 2;
let running = 0;
const waiting = [];
async function inTurn(send) {
  if (has("events")) return send();
  while (running >= TURNS) await new Promise((r) => waiting.push(r));
  running++;
  try {
    const res = await send();
    if (res.status === 204 || res.status === 304) return res;
    return new Response(await res.arrayBuffer(), { status: res.status, statusText: res.statusText, headers: res.headers });
  } finally {
    running--;
    if (waiting.length) waiting.shift()();
  }
}

// While this page changes the key, other calls wait for it (sent meanwhile, they would
// carry a key the poi no longer takes).
let keyChange = Promise.resolve();

// A request with this browser's key. Refused for want of it, it waits on the one key
// dialog and is sent again (at most three times; a saved key that is refused is wrong, so
// the dialog says so). `headers` given: sent as they are, never prompted for.
async function keyed(path, opts, headers) {
  for (let attempt = 0; ; attempt++) {
    if (!headers) await keyChange;
    const res = await inTurn(() => fetch(path, { ...opts, headers: { ...(headers || auth()), ...opts.headers } }));
    if (res.status !== 401 || attempt >= 3 || headers) return res;
    if (!(await askKey(Boolean(savedKey())))) {
      throw Object.assign(new Error("This poi needs its pairing key (Settings, or reload the page)."), { needKey: true });
    }
  }
}
const failure = async (res, what) => new Error((await res.json().catch(() => ({}))).error || what + " failed: HTTP " + res.status);

// One call: JSON in and out, the server's `error` text as the thrown message.
async function api(method, path, body, headers) {
  const opts = { method, headers: {} };
  // A file's bytes say so: a poi takes them only as octet-stream (a page on another site cannot send that).
  if (body instanceof Blob || body instanceof ArrayBuffer) { opts.body = body; opts.headers["content-type"] = "application/octet-stream"; }
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["content-type"] = "application/json"; }
  const res = await keyed(path, opts, headers);
  if (!res.ok) throw await failure(res, method + " " + path);
  return res.json().catch(() => ({}));
}

// A binary GET with the key (an <img src> cannot send it): an object URL.
async function blobUrl(path) {
  const res = await keyed(path, {});
  if (!res.ok) throw await failure(res, path);
  return URL.createObjectURL(await res.blob());
}

const thumbs = new Map();
function thumb(id) {
  if (!thumbs.has(id)) {
    const made = has("previews") ? blobUrl("/api/thumbnail/image/" + encodeURIComponent(id)) : drawnThumb(id);
    // A failure is not kept: the next redraw asks again.
    thumbs.set(id, made.catch(() => { thumbs.delete(id); return ""; }));
  }
  return thumbs.get(id);
}
// A poi that draws no thumbnails (a board) sends the image's raw pixels: drawn here.
async function drawnThumb(id) {
  const im = state.images.find((i) => i.id === id);
  const res = await keyed("/api/images/" + encodeURIComponent(id) + "/pixels", {});
  if (!res.ok) throw await failure(res, "pixels");
  const rgb = new Uint8Array(await res.arrayBuffer());
  if (!im || rgb.length !== im.width * im.height * 3) throw new Error("pixels of " + id + " are not " + (im && im.width) + " × " + (im && im.height));
  const canvas = h("canvas", { width: im.width, height: im.height }), ctx = canvas.getContext("2d");
  const out = ctx.createImageData(im.width, im.height);
  for (let i = 0, o = 0; i < rgb.length; i += 3, o += 4) {
    out.data[o] = rgb[i]; out.data[o + 1] = rgb[i + 1]; out.data[o + 2] = rgb[i + 2]; out.data[o + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  return URL.createObjectURL(await new Promise((resolve) => canvas.toBlob(resolve, "image/png")));
}
// An image's thumbnail; an image whose pixels are still arriving gets an empty frame.
function thumbImg(id, cls) {
  const img = h("img", { class: cls || "", alt: "" });
  if (state.images.some((im) => im.id === id && im.available)) thumb(id).then((url) => { if (url) img.src = url; });
  return img;
}

// ----- tabs -----

function showTab() {
  const name = (location.hash || "#play").slice(1);
  const link = document.querySelector("nav a[data-tab='" + name + "']");
  const tab = $(name) && $(name).classList.contains("tab") && link && !link.hidden ? name : "play";
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== tab;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.tab === tab);
  if (tab === "library") patternChanged(editing.pattern);
  if (tab === "group" && has("peers")) loadGroup().catch(fail);
  if (tab === "sync") loadSync().catch(fail);
  if (tab === "settings") loadSettings().catch(fail);
}
window.addEventListener("hashchange", showTab);

// ----- swatches: what a pattern or sequence looks like, animated -----

const hex = (c) => "#" + [c.r, c.g, c.b].map((v) => v.toString(16).padStart(2, "0")).join("");
const rgb = (x) => ({ r: parseInt(x.slice(1, 3), 16), g: parseInt(x.slice(3, 5), 16), b: parseInt(x.slice(5, 7), 16) });
const RAINBOW = "linear-gradient(90deg,red,#ff0,lime,cyan,blue,#f0f,red)";

function paintSwatch(e, p) {
  const c1 = hex(p.color1), c2 = hex(p.color2), t = p.type;
  const seconds = Math.max(0.3, 6 - (p.speed / 255) * 5.5);
  e.className = e.className.replace(/\ba-\w+/g, "").trim();
  e.style.cssText = "--t:" + seconds.toFixed(2) + "s";
  let anim;
  if (t === 0 || t === 10 || t === 13) { e.style.backgroundImage = RAINBOW; anim = "a-slide"; }
  else if (t === 3 || t === 4 || t === 15) { e.style.backgroundImage = `radial-gradient(circle at 30% 50%,${c1} 0 12%,transparent 13%),radial-gradient(circle at 70% 40%,${c2} 0 10%,transparent 11%),linear-gradient(90deg,${c1},${c2})`; anim = "a-twinkle"; }
  else if (t === 5 || t === 8 || t === 17) { e.style.backgroundImage = `repeating-linear-gradient(90deg,${c1} 0 12%,${c2} 12% 20%,#000 20% 50%)`; anim = "a-slide"; }
  else if (t === 6 || t === 11 || t === 12) { e.style.backgroundImage = `linear-gradient(90deg,${c1},${c2})`; anim = "a-breathe"; }
  else if (t === 7) { e.style.backgroundImage = `linear-gradient(90deg,${c1},${c2})`; anim = "a-blink"; }
  else { e.style.backgroundImage = `linear-gradient(90deg,${c1},${c2},${c1})`; anim = "a-slide"; }
  e.classList.add(anim);
  e.title = TYPES[t] + ", colours " + c1 + " and " + c2;
}
function patternSwatch(p) {
  const e = h("div", { class: "swatch" });
  paintSwatch(e, p);
  return e;
}

// A sequence tile steps through its items at their durations (at least a glimpse each).
const sequenceSwatches = [];
function sequenceSwatch(seq) {
  const box = h("div", { class: "swatch" });
  sequenceSwatches.push({ box, seq, shown: -1 });
  return box;
}
function stepSequenceSwatches() {
  const now = Date.now();
  for (const s of sequenceSwatches) {
    if (!s.box.isConnected) continue;
    const times = s.seq.items.map((i) => Math.max(400, i.durationMs));
    const total = times.reduce((a, b) => a + b, 0) || 1;
    let t = now % total, i = 0;
    while (i < times.length - 1 && t >= times[i]) t -= times[i++];
    if (i === s.shown) continue;
    s.shown = i;
    const item = s.seq.items[i];
    if (!item) continue;
    const pattern = item.pattern !== undefined && state.patterns.find((p) => p.index === item.pattern);
    s.box.replaceChildren();
    s.box.style.cssText = "";
    if (pattern) paintSwatch(s.box, pattern);
    else if (item.image) s.box.append(thumbImg(item.image));
  }
  for (let i = sequenceSwatches.length - 1; i >= 0; i--) if (!sequenceSwatches[i].box.isConnected) sequenceSwatches.splice(i, 1);
}
setInterval(stepSequenceSwatches, 200);

// ----- play -----

function playing(kind, item) {
  const s = state.status;
  if (kind === "image") return s.mode === 1 && (s.imageId ? s.imageId === item.id : s.index === item.index);
  if (kind === "pattern") return s.mode === 2 && s.index === item.index;
  return s.mode === 3 && s.index === item.index;
}
async function play(body) {
  const answer = await api("POST", "/api/mode", body);
  Object.assign(state.status, { mode: answer.mode, index: answer.index, imageId: answer.imageId || null });
  markPlaying();
}
// Drawn, not an emoji: a poi's browser may have no emoji font.
function eye() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "24");
  svg.setAttribute("height", "24");
  svg.innerHTML = '<path d="M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12z" fill="none" stroke="currentColor" stroke-width="2"/><circle cx="12" cy="12" r="3" fill="currentColor"/>';
  return svg;
}
function tile(kind, item, picture, label, body, previewPath) {
  const look = has("previews") ? h("button", { type: "button", class: "look", title: "Preview", "aria-label": "preview " + label,
    onclick: (ev) => { ev.stopPropagation(); showPreview(previewPath, label); } }, eye()) : null;
  return h("div", { class: "tile", role: "button", tabIndex: 0, "data-kind": kind, "data-key": item.id || String(item.index),
    onclick: () => play(body).catch(fail),
    onkeydown: (ev) => { if (ev.key === "Enter") play(body).catch(fail); } },
  picture, h("span", { class: "label" }, label), look);
}
function renderTiles() {
  $("tiles-images").replaceChildren(...state.images.map((im) =>
    tile("image", im, thumbImg(im.id), im.name + (im.available ? "" : " (arriving)"), { mode: 1, id: im.id }, "/api/preview/image/" + im.id)));
  if (!state.images.length) $("tiles-images").append(h("p", { class: "hint" }, "No images yet: add one in Library."));
  $("tiles-patterns").replaceChildren(...state.patterns.map((p) =>
    tile("pattern", p, patternSwatch(p), p.index + ": " + p.name, { mode: 2, index: p.index }, "/api/preview/pattern/" + p.index)));
  if (!state.patterns.length) $("tiles-patterns").append(h("p", { class: "hint" }, "No patterns yet: make one in Library."));
  $("tiles-sequences").replaceChildren(...state.sequences.map((s) =>
    tile("sequence", s, sequenceSwatch(s), "Sequence " + s.index + " (" + s.items.length + " steps)", { mode: 3, index: s.index }, "/api/preview/sequence/" + s.index)));
  if (!state.sequences.length) $("tiles-sequences").append(h("p", { class: "hint" }, "No sequences yet: build one in Library."));
  markPlaying();
}
function markPlaying() {
  for (const t of document.querySelectorAll(".tile")) {
    const kind = t.dataset.kind, key = t.dataset.key;
    const list = kind === "image" ? state.images : kind === "pattern" ? state.patterns : state.sequences;
    const item = list.find((i) => (i.id || String(i.index)) === key);
    t.classList.toggle("playing", Boolean(item) && playing(kind, item));
  }
}
async function showPreview(path, caption) {
  const d = $("previewdialog"), img = $("previewimg");
  $("previewcap").textContent = caption + ": spun, as a spectator sees it";
  if (img.src) URL.revokeObjectURL(img.src);
  img.removeAttribute("src");
  d.showModal();
  try { img.src = await blobUrl(path + "?size=360"); } catch (e) { d.close(); fail(e); }
}

function renderStatus() {
  const s = state.status;
  for (const [id, out, v] of [["brightness", "bval", s.brightness], ["framerate", "fval", s.framerate]]) {
    if (document.activeElement !== $(id)) $(id).value = v;
    $(out).textContent = id === "framerate" ? $(id).value + "/s" : $(id).value;
  }
  markPlaying();
}

// ----- loading -----

async function loadStatus() { state.status = await api("GET", "/api/status"); renderStatus(); }
async function loadLibrary() {
  const [im, pa, se] = await Promise.all([api("GET", "/api/images"), api("GET", "/api/patterns"), api("GET", "/api/sequences")]);
  state.images = im.images;
  state.patterns = pa.patterns;
  state.sequences = se.sequences;
  renderTiles();
  renderImages();
  renderSlots();
}
async function loadConfig() {
  state.config = await api("GET", "/api/device/config");
  const c = state.config;
  showFeatures();
  $("name").textContent = c.deviceName;
  document.title = c.deviceName + " · povpoi";
  $("scope").value = c.syncMode;
  $("scopehint").textContent = c.syncMode === "mirror"
    ? "Controls: all poi. What you play, the brightness and the speed go to every poi of the group in mirror mode."
    : "Controls: this poi. What you play and set here stays on this poi; the library still syncs.";
}
async function loadConflicts() {
  state.conflicts = (await api("GET", "/api/sync/conflicts")).conflicts;
  const n = state.conflicts.length;
  $("conflictbadge").hidden = n === 0;
  $("conflictbadge").textContent = n;
  renderConflicts();
}
const visible = (id) => !$(id).hidden;
function refresh() {
  const jobs = [loadStatus(), loadLibrary()];
  if (has("peers")) jobs.push(loadConflicts());
  if (visible("group") && has("peers")) jobs.push(loadGroup());
  if (visible("sync")) jobs.push(loadSync());
  return Promise.all(jobs).catch(fail);
}
let pending = null;
const later = (ms) => { clearTimeout(pending); pending = setTimeout(refresh, ms === undefined ? 100 : ms); };

// ----- library: images -----

function renderImages() {
  const list = $("images");
  list.replaceChildren(...state.images.map((im, n) => h("li", { "data-id": im.id },
    thumbImg(im.id, "thumb"),
    h("span", { class: "grow" }, im.name, h("br"), h("small", { class: "hint" }, im.width + " × " + im.height + (im.available ? "" : " · arriving"))),
    h("button", { type: "button", class: "icon", title: "Move up", "aria-label": "move " + im.name + " up", disabled: n === 0, onclick: () => move(n, -1) }, "↑"),
    h("button", { type: "button", class: "icon", title: "Move down", "aria-label": "move " + im.name + " down", disabled: n === state.images.length - 1, onclick: () => move(n, 1) }, "↓"),
    h("button", { type: "button", onclick: () => rename(im) }, "Rename"),
    h("button", { type: "button", class: "danger", onclick: () => remove(im) }, "Delete"))));
  if (!state.images.length) list.append(h("li", { class: "hint" }, "No images yet."));
}
async function rename(im) {
  const name = prompt("New name for " + im.name, im.name);
  if (!name || name === im.name) return;
  await api("PATCH", "/api/images/" + im.id, { name }).then(() => toast("Renamed to " + name), fail);
  later(0);
}
async function remove(im) {
  if (!confirm("Delete " + im.name + " from every poi of the group?")) return;
  await api("DELETE", "/api/images/" + im.id).then(() => toast(im.name + " deleted"), fail);
  later(0);
}
async function move(n, by) {
  const ids = state.images.map((i) => i.id);
  [ids[n], ids[n + by]] = [ids[n + by], ids[n]];
  await api("PUT", "/api/images/order", { ids }).catch(fail);
  later(0);
}

// Upload with progress (fetch reports no upload progress), the button held while it runs.
function sendForm(form) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/image");
    for (const [k, v] of Object.entries(auth())) xhr.setRequestHeader(k, v);
    const bar = $("progress");
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) bar.value = ev.loaded / ev.total; };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: status below */ }
      if (xhr.status === 401) reject(Object.assign(new Error("key"), { needKey: true }));
      else if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new Error(data.error || "upload failed: HTTP " + xhr.status));
    };
    xhr.onerror = () => reject(new Error("upload failed: the poi did not answer"));
    xhr.send(form);
  });
}
// For a poi without a converter (a board, which takes raw RGB only): the picture made ready
// here as a node's converter does it (povpoi-media's convert: rotate, flip, scale to the
// LED count with the width in proportion up to 400 columns, double contrast), scaled by the
// browser's own smoothing. A file already `image_WxH.rgb` goes as it is.
const MAX_WIDTH = 400;
async function rawRgb(file, f) {
  if (/^image_\d+x\d+\.rgb$/.test(file.name)) return { blob: file, name: file.name };
  let bitmap;
  // Turned upright as the photo's EXIF says, as a node's converter does too.
  try { bitmap = await createImageBitmap(file); } catch (e) {
    throw new Error(file.name + " is not a picture this browser can read: use PNG, JPEG, GIF, BMP or WebP");
  }
  const turn = Number(f.rotate.value), quarter = turn === 90 || turn === 270;
  const w = quarter ? bitmap.height : bitmap.width, ht = quarter ? bitmap.width : bitmap.height;
  const leds = state.config.ledCount || 32;
  const width = Math.min(MAX_WIDTH, Math.max(1, Math.floor((2 * w * leds + ht) / (2 * ht))));
  // Turned, flipped and scaled in one draw onto the strip-sized canvas: a phone's photo at
  // full size would pass the largest canvas some browsers allow (iOS: 16.7 megapixels).
  // A quarter turn and a scale along the axes commute, so this is the converter's order.
  const strip = h("canvas", { width, height: leds }), c = strip.getContext("2d");
  c.fillRect(0, 0, width, leds);
  c.imageSmoothingQuality = "high";
  c.translate(width / 2, leds / 2);
  c.scale(f.flipH.checked ? -1 : 1, f.flipV.checked ? -1 : 1);
  c.rotate(turn * Math.PI / 180);
  const [dw, dh] = quarter ? [leds, width] : [width, leds];
  c.drawImage(bitmap, -dw / 2, -dh / 2, dw, dh);
  bitmap.close();
  const rgba = c.getImageData(0, 0, width, leds).data, rgb = new Uint8Array(width * leds * 3);
  for (let i = 0, o = 0; i < rgba.length; i += 4, o += 3) { rgb[o] = rgba[i]; rgb[o + 1] = rgba[i + 1]; rgb[o + 2] = rgba[i + 2]; }
  if (f.contrast.checked) {
    // Twice the contrast around the mean luma (ITU-R 601), as the converter does.
    let sum = 0;
    for (let o = 0; o < rgb.length; o += 3) sum += Math.floor((rgb[o] * 19595 + rgb[o + 1] * 38470 + rgb[o + 2] * 7471 + 0x8000) / 65536);
    const n = width * leds, mean = Math.floor((sum + Math.floor(n / 2)) / n);
    for (let o = 0; o < rgb.length; o++) rgb[o] = Math.min(255, Math.max(0, 2 * rgb[o] - mean));
  }
  return { blob: new Blob([rgb]), name: "image_" + width + "x" + leds + ".rgb" };
}
let uploading = false;
$("upload").onsubmit = async (ev) => {
  ev.preventDefault();
  if (uploading) return;
  const f = ev.target, button = $("send");
  const form = new FormData();
  const file = $("file").files[0];
  if (!file) return toast("Choose a picture first.", true);
  uploading = true;
  button.disabled = true;
  button.textContent = "Uploading…";
  try {
    let picture = { blob: file, name: file.name };
    if (has("convert")) {
      for (const box of ["flipH", "flipV", "contrast"]) if (f[box].checked) form.append(box, "true");
      if (f.rotate.value !== "0") form.append("rotate", f.rotate.value);
    } else picture = await rawRgb(file, f);
    // Named after the picture, not after the raw file made from it.
    const name = f.name.value.trim() || (has("convert") ? "" : file.name.replace(/\.[^.]*$/, ""));
    if (name) form.append("name", name);
    form.append("file", picture.blob, picture.name);
    let answer;
    try { answer = await sendForm(form); } catch (e) {
      if (!e.needKey || !(await askKey(Boolean(savedKey())))) throw e.needKey ? new Error("This poi needs its pairing key.") : e;
      answer = await sendForm(form);
    }
    toast("Added " + answer.name + " (" + answer.width + " × " + answer.height + ")");
    f.reset();
    later(0);
  } catch (e) { fail(e); } finally {
    uploading = false;
    button.disabled = false;
    button.textContent = "Upload";
    $("progress").hidden = true;
  }
};
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  if (ev.dataTransfer.files.length) $("file").files = ev.dataTransfer.files;
});

// ----- library: patterns -----

function renderSlots() {
  const keepP = $("pslot").value, keepS = $("sslot").value;
  $("pslot").replaceChildren(...Array.from({ length: PATTERN_SLOTS }, (_, i) => {
    const p = state.patterns.find((x) => x.index === i);
    return h("option", { value: i }, i + ": " + (p ? p.name : "(empty)"));
  }));
  $("sslot").replaceChildren(...Array.from({ length: SEQUENCE_SLOTS }, (_, i) => {
    const s = state.sequences.find((x) => x.index === i);
    return h("option", { value: i }, i + ": " + (s ? s.items.length + " steps" : "(empty)"));
  }));
  if (keepP) $("pslot").value = keepP;
  if (keepS) $("sslot").value = keepS;
  if (!editing.pattern) pickPattern();
  if (!editing.sequence) pickSequence();
}
const editing = { pattern: false, sequence: false };
function draftPattern() {
  return { type: Number($("ptype").value), color1: rgb($("pc1").value), color2: rgb($("pc2").value), speed: Number($("pspeed").value) };
}
function pickPattern() {
  const slot = Number($("pslot").value || 0);
  const p = state.patterns.find((x) => x.index === slot);
  if (p) {
    $("ptype").value = p.type; $("pc1").value = hex(p.color1); $("pc2").value = hex(p.color2); $("pspeed").value = p.speed;
  }
  editing.pattern = false;
  patternChanged(false);
}
let liveTimer = null;
// The swatch follows every change; the spun preview (drawn by the poi's own renderer) a
// moment after the last one.
function patternChanged(edited) {
  if (edited) editing.pattern = true;
  const d = draftPattern();
  $("sval").textContent = d.speed;
  paintSwatch($("pswatch"), d);
  clearTimeout(liveTimer);
  // Drawn by the poi (one heavy job at a time there): only while the editor is on screen.
  if ($("library").hidden || !has("previews")) return;
  const q = new URLSearchParams({ type: d.type, color1: $("pc1").value.slice(1), color2: $("pc2").value.slice(1), speed: d.speed, size: 160 });
  const img = $("plive");
  if (img.dataset.shows === q.toString()) return;
  liveTimer = setTimeout(async () => {
    try {
      const url = await blobUrl("/api/preview/pattern/draft?" + q);
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = url;
      img.dataset.shows = q.toString();
    } catch (e) { img.removeAttribute("src"); }
  }, 250);
}
for (const id of ["ptype", "pc1", "pc2", "pspeed"]) $(id).addEventListener("input", () => patternChanged(true));
$("pslot").onchange = pickPattern;
async function savePattern() {
  const slot = Number($("pslot").value);
  await api("PUT", "/api/patterns/" + slot, draftPattern());
  editing.pattern = false;
  toast("Pattern slot " + slot + " saved");
  return slot;
}
$("pattern").onsubmit = (ev) => { ev.preventDefault(); savePattern().then(() => later(0), fail); };
$("pplay").onclick = () => savePattern().then((slot) => play({ mode: 2, index: slot })).then(() => later(0), fail);
$("pclear").onclick = () => {
  const slot = Number($("pslot").value);
  if (!confirm("Clear pattern slot " + slot + " on every poi?")) return;
  api("DELETE", "/api/patterns/" + slot).then(() => { toast("Pattern slot " + slot + " cleared"); later(0); }, fail);
};

// ----- library: sequences -----

function stepRow(item) {
  const choice = h("select", { "aria-label": "what this step plays" },
    state.images.map((im) => h("option", { value: "i:" + im.id }, "Image: " + im.name)),
    state.patterns.map((p) => h("option", { value: "p:" + p.index }, "Pattern " + p.index + ": " + p.name)));
  if (item) choice.value = item.image ? "i:" + item.image : "p:" + item.pattern;
  const seconds = h("input", { type: "number", min: "0.1", max: "65", step: "0.1", value: item ? item.durationMs / 1000 : 5, "aria-label": "seconds", style: "width:6em" });
  const li = h("li", {}, h("span", { class: "grow" }, choice), seconds, "s",
    h("button", { type: "button", class: "icon", title: "Earlier", onclick: () => { if (li.previousElementSibling) li.parentNode.insertBefore(li, li.previousElementSibling); editing.sequence = true; } }, "↑"),
    h("button", { type: "button", class: "icon", title: "Later", onclick: () => { if (li.nextElementSibling) li.parentNode.insertBefore(li.nextElementSibling, li); editing.sequence = true; } }, "↓"),
    h("button", { type: "button", class: "icon danger", title: "Remove", onclick: () => { li.remove(); editing.sequence = true; } }, "✕"));
  li.addEventListener("input", () => { editing.sequence = true; });
  return li;
}
function pickSequence() {
  const slot = Number($("sslot").value || 0);
  const s = state.sequences.find((x) => x.index === slot);
  $("sitems").replaceChildren(...(s ? s.items.map(stepRow) : []));
  $("sloop").checked = s ? s.loop : true;
  editing.sequence = false;
}
$("sslot").onchange = pickSequence;
$("sloop").onchange = () => { editing.sequence = true; };
$("sadd").onclick = () => {
  if ($("sitems").children.length >= MAX_SEQUENCE_ITEMS) return toast("A sequence holds at most " + MAX_SEQUENCE_ITEMS + " steps.", true);
  if (!state.images.length && !state.patterns.length) return toast("Add an image or a pattern first.", true);
  $("sitems").append(stepRow());
  editing.sequence = true;
};
async function saveSequence() {
  const slot = Number($("sslot").value);
  const items = [...$("sitems").children].map((li) => {
    const [kind, key] = li.querySelector("select").value.split(/:(.*)/);
    if (!key) throw new Error("A step plays something no longer stored: choose again or remove it.");
    const durationMs = Math.round(Number(li.querySelector("input").value) * 1000);
    return kind === "i" ? { image: key, durationMs } : { pattern: Number(key), durationMs };
  });
  if (!items.length) throw new Error("Add at least one step.");
  await api("PUT", "/api/sequences/" + slot, { items, loop: $("sloop").checked });
  editing.sequence = false;
  toast("Sequence " + slot + " saved");
  return slot;
}
$("sequence").onsubmit = (ev) => { ev.preventDefault(); saveSequence().then(() => later(0), fail); };
$("splay").onclick = () => saveSequence().then((slot) => play({ mode: 3, index: slot })).then(() => later(0), fail);
$("sclear").onclick = () => {
  const slot = Number($("sslot").value);
  if (!confirm("Clear sequence " + slot + " on every poi?")) return;
  api("DELETE", "/api/sequences/" + slot).then(() => { toast("Sequence " + slot + " cleared"); later(0); }, fail);
};

// ----- the group -----

const ago = (ms) => {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : new Date(ms).toLocaleString();
};
function whatPlays(m) {
  if (m.mode === undefined || m.mode === null) return "unknown";
  if (m.mode === 0) return "dark";
  if (m.mode === 4) return "live column";
  if (m.mode === 1) {
    const im = state.images.find((i) => i.id === m.imageId) || state.images[m.index];
    return "image " + (im ? im.name : m.index);
  }
  if (m.mode === 2) {
    const p = state.patterns.find((x) => x.index === m.index);
    return "pattern " + m.index + (p ? " (" + p.name + ")" : "");
  }
  return "sequence " + m.index;
}
function member(m, self) {
  const reach = self || m.reachable;
  const name = m.deviceName || m.address;
  const step = m.inStep ? h("span", { class: "pill ok" }, "in step") : h("span", { class: "pill bad" }, self ? "alone" : "not in step");
  return h("li", { class: "member", "data-device": m.deviceId },
    h("span", { class: "grow" },
      h("strong", {}, name + (self ? " (this poi)" : "")), " ", reach ? step : h("span", { class: "pill bad" }, "unreachable"), h("br"),
      h("small", { class: "hint" }, [
        m.address,
        reach ? "plays " + whatPlays(m) : null,
        m.powerMode ? "power " + m.powerMode : null,
        m.battery === null || m.battery === undefined ? "battery: not measured" : "battery " + m.battery + " %",
        self ? null : "last sync " + ago(m.lastSync) + (m.lastResult ? " (" + m.lastResult + ")" : ""),
      ].filter(Boolean).join(" · "))),
    self || (m.deviceId && m.reachable) ? h("button", { type: "button", onclick: () => identify(m, self).catch(fail) }, "Identify") : null,
    self ? null : h("a", { href: "http://" + m.address + "/", class: "pill", target: "_blank", rel: "noopener" }, "Open"));
}
async function identify(m, self) {
  if (self) await api("POST", "/api/identify", { seconds: 3 });
  else await api("POST", "/api/multipoi/peercmd", { cmd: "identify", peer: m.deviceId, seconds: 3 });
  toast(m.deviceName + " flashes for 3 s");
}
async function loadGroup() {
  state.group = await api("GET", "/api/group");
  const g = state.group;
  $("members").replaceChildren(member(g.self, true), ...g.peers.map((p) => member(p, false)));
  if (!g.peers.length) $("members").append(h("li", { class: "hint" }, "No other poi found yet. Same Wi-Fi and group name? Add one by address under Sync."));
}
function flashSelf() {
  const card = document.querySelector(".member[data-device='" + (state.config.deviceId || "") + "']");
  // A yellow frame, twice a second: well under the three flashes a second that can harm.
  if (!matchMedia("(prefers-reduced-motion: reduce)").matches) {
    document.body.animate([{ boxShadow: "inset 0 0 0 10px #ffd400" }, { boxShadow: "none" }], { duration: 500, iterations: 6, easing: "steps(1)" });
  }
  if (card) { card.classList.remove("flash"); void card.offsetWidth; card.classList.add("flash"); }
}
$("scope").onchange = () => api("POST", "/api/multipoi/syncmode", { mode: $("scope").value })
  .then(() => { toast($("scope").value === "mirror" ? "Controls reach all poi" : "Controls reach this poi only"); return loadConfig(); },
    (e) => { fail(e); loadConfig().catch(() => {}); });

// ----- sync -----

async function loadSync() {
  const st = await api("GET", "/api/sync/status");
  $("syncstate").replaceChildren(
    h("div", {}, "Group ", h("strong", {}, st.syncGroup), st.protected ? " · key set" : " · no key"),
    h("div", {}, "Auto-sync " + (st.autoSync ? "every " + Math.round(st.syncInterval / 1000) + " s" : "off")),
    h("div", {}, "Poi online: " + st.peers.filter((p) => p.online).length));
  $("online").replaceChildren(...st.peers.map((p) => h("li", { "data-device": p.deviceId },
    h("span", { class: "grow" }, h("strong", {}, p.deviceName || p.ipAddress), " ",
      h("span", { class: "pill" + (p.online ? " ok" : " bad") }, p.online ? "online" : "offline"), h("br"),
      h("small", { class: "hint" }, p.ipAddress + ":" + p.port + " · group " + p.syncGroup + " · seen " + ago(p.lastSeen))))));
  if (!has("peers")) return;
  const [peers, history] = await Promise.all([api("GET", "/api/sync/peers"), api("GET", "/api/sync/history")]);
  const last = history[0];
  $("syncstate").append(
    h("div", { class: last && !last.ok ? "bad" : "" }, "Last sync: " + (last ? ago(last.at) + " with " + (last.peerName || last.ipAddress) + (last.ok ? ", ok" : ", failed: " + last.error) : "none yet")));
  $("peers").replaceChildren(...peers.addresses.map((a) => h("li", {}, h("span", { class: "grow" }, a),
    h("button", { type: "button", class: "danger", onclick: () => api("DELETE", "/api/sync/peers/" + encodeURIComponent(a)).then(loadSync, fail) }, "Remove"))));
  if (!peers.addresses.length) $("peers").append(h("li", { class: "hint" }, "None: poi find each other on the network."));
  $("history").replaceChildren(...history.slice(0, 20).map((e) => h("li", { class: e.ok ? "" : "bad" },
    new Date(e.at).toLocaleTimeString() + " · " + (e.peerName || e.ipAddress) + " · " + e.trigger + " · " +
    (e.ok ? e.recordsReceived + " in, " + e.recordsSent + " out" : "failed: " + e.error))));
}
$("syncnow").onclick = async () => {
  const b = $("syncnow");
  b.disabled = true;
  b.textContent = "Syncing…";
  try {
    const r = await api("POST", "/api/sync/execute", { peerId: "auto" });
    toast("Synced: " + r.itemsSynced + " changes");
  } catch (e) { fail(e); } finally { b.disabled = false; b.textContent = "Sync now"; later(0); }
};
$("addpeer").onsubmit = (ev) => {
  ev.preventDefault();
  const address = ev.target.address.value.trim();
  api("POST", "/api/sync/peers", { address }).then(() => { ev.target.reset(); toast("Added " + address); return loadSync(); }, fail);
};

function versionView(c, v) {
  const value = v.value;
  let body;
  if (v.deleted || !value) body = h("p", {}, "Deleted");
  else if (c.kind === "image") body = h("div", {}, thumbImg(c.id, "thumb"), h("p", {}, value.name + " (" + value.width + " × " + value.height + ")"));
  else if (c.kind === "pattern") body = h("div", {}, patternSwatch(value), h("p", {}, value.name + ", speed " + value.speed));
  else body = h("p", {}, value.items.length + " steps" + (value.loop ? ", looping" : ""));
  return h("div", { class: "version" + (v.shown ? " shown" : "") },
    h("small", { class: "hint" }, (v.shown ? "Shown now · " : "") + "changed " + ago(v.timestamp)), body,
    h("button", { type: "button", class: "wide", onclick: () => resolve({ item: c.item, keep: v.version }, "Kept this version") }, "Keep this"));
}
function renderConflicts() {
  const box = $("conflicts");
  if (!state.conflicts.length) return box.replaceChildren(h("p", { class: "hint" }, "No conflicts."));
  box.replaceChildren(...state.conflicts.map((c) => h("div", { class: "card conflict" },
    h("strong", {}, c.kind === "image" ? "Image changed on two poi" : c.kind === "pattern" ? "Pattern slot " + c.slot + " changed on two poi" : "Sequence " + c.slot + " changed on two poi"),
    h("div", { class: "versions" }, c.versions.map((v) => versionView(c, v))),
    h("button", { type: "button", class: "primary wide", onclick: () => resolve({ item: c.item, keepBoth: true }, "Kept both") }, "Keep both"))));
}
async function resolve(body, done) {
  await api("POST", "/api/sync/conflicts/resolve", body).then(() => toast(done), fail);
  later(0);
}

// ----- settings -----

async function loadSettings() {
  await loadConfig();
  const c = state.config, f = $("device");
  f.deviceName.value = c.deviceName;
  f.syncGroup.value = c.syncGroup;
  f.ledCount.value = c.ledCount || state.status.leds || 32;
  f.colorOrder.value = c.colorOrder || "BGR";
  f.powerMode.value = c.powerMode;
  f.autoSync.checked = c.autoSync;
  f.syncSeconds.value = Math.round(c.syncInterval / 1000);
  if (has("wifi")) api("GET", "/api/wifi/status").then((w) => {
    $("wifistate").textContent = (w.mode === "station" ? "Joined " : "Own access point ") + w.ssid + ".";
  }, fail);
  $("keystate").textContent = c.protected
    ? "A pairing key is set: peers and browsers need it. Set the same key on every poi of the group."
    : "No pairing key: anyone on this network can change this poi. Set the same key on every poi of the group.";
  $("curkey").hidden = !c.protected;
  $("keyform").current.value = c.protected ? savedKey() : "";
  $("about").textContent = "Device " + c.deviceId + " · " + location.host + " · LED 0 is the strip's data-input end.";
}
$("device").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  try {
    const body = {
      deviceName: f.deviceName.value.trim(), syncGroup: f.syncGroup.value.trim(), autoSync: f.autoSync.checked,
      syncInterval: Number(f.syncSeconds.value) * 1000,
    };
    // A board's strip is set when it is built, not through the API.
    if (has("strip")) Object.assign(body, { ledCount: Number(f.ledCount.value), colorOrder: f.colorOrder.value });
    await api("POST", "/api/device/config", body);
    if (has("power") && f.powerMode.value !== state.config.powerMode) await api("POST", "/api/power/mode", { mode: f.powerMode.value });
    toast("Settings saved");
    await loadSettings();
  } catch (e) { fail(e); }
};
$("keyform").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = ev.target, key = f.key.value.trim();
  const body = { groupKey: key || null };
  if (state.config.protected) body.currentGroupKey = f.current.value;
  let done;
  const sent = auth();
  keyChange = new Promise((resolve) => { done = resolve; });
  try {
    await api("POST", "/api/device/config", body, sent);
    if (key) localStorage.setItem(KEY, key); else localStorage.removeItem(KEY);
    done();
    f.reset();
    toast(key ? "Pairing key set: set the same key on the other poi" : "Pairing key removed");
    await loadSettings();
  } catch (e) { fail(e); } finally { done(); }
};
$("backup").onclick = async () => {
  try {
    const res = await keyed("/api/backup", {});
    if (!res.ok) throw await failure(res, "backup");
    const name = (/filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "") || [])[1] || "povpoi.povbackup";
    const a = h("a", { href: URL.createObjectURL(await res.blob()), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    toast("Backup saved as " + name);
  } catch (e) { fail(e); }
};
$("restore").onchange = async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  try {
    const r = await api("POST", "/api/restore", file);
    toast("Restored: " + r.imagesAdded + " images added (" + r.imagesPresent + " already here), " +
      r.patternsSet + " patterns, " + r.sequencesSet + " sequences");
    later(0);
  } catch (e) { fail(e); } finally { ev.target.value = ""; }
};

// ----- brightness and speed -----

for (const [id, path, field] of [["brightness", "/api/brightness", "brightness"], ["framerate", "/api/framerate", "framerate"]]) {
  $(id).oninput = () => renderStatus();
  $(id).onchange = () => api("POST", path, { [field]: Number($(id).value) }).then((r) => { state.status[field] = r[field]; }, fail);
}
$("stop").onclick = () => play({ mode: 0 }).catch(fail);

// ----- the show clock indicator -----

function showClock(standing, bound) {
  const words = { inStep: "in step", converging: "getting in step", alone: "alone" };
  const c = $("clock");
  c.textContent = words[standing] || standing;
  c.title = "show clock" + (bound !== null && bound !== undefined ? ": within " + (bound / 1000).toFixed(1) + " ms of the group" : "");
  c.className = "pill" + (standing === "inStep" ? " ok" : standing === "converging" ? " bad" : "");
}

// ----- live updates: the event stream (read with fetch: EventSource cannot send the key) -----

const handlers = {
  // What plays shows at once; the lists (a burst of changes is common) a moment later.
  libraryChanged: () => { loadStatus().catch(() => {}); later(150); },
  peerUp: () => { if (visible("group")) loadGroup().catch(() => {}); },
  peerDown: () => { if (visible("group")) loadGroup().catch(() => {}); },
  clock: (d) => showClock(d.standing, d.errorBoundUs),
  syncFinished: () => { if (visible("sync")) loadSync().catch(() => {}); },
  identify: () => flashSelf(),
};
async function followEvents() {
  for (;;) {
    try {
      const res = await fetch("/api/events", { headers: auth() });
      if (res.status === 401) { await keyEntered(); continue; }
      if (!res.ok) throw new Error("event stream: HTTP " + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      // Anything missed while the stream was down.
      later(0);
      try { for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          try { if (handlers[name] && data) handlers[name](JSON.parse(data)); } catch (e) { /* one bad event: keep reading */ }
        }
      } } finally { reader.cancel().catch(() => {}); }
    } catch (e) { /* the poi restarts or the Wi-Fi dropped: reconnect */ }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ----- the LEDs, drawn from the sim output (a board with a real strip answers 409) -----

let stripAfter = null;
async function drawStrip() {
  if (!$("stripbox").open || $("play").hidden) return setTimeout(drawStrip, 500);
  try {
    const res = await fetch("/api/strip" + (stripAfter === null ? "" : "?after=" + stripAfter), { headers: auth() });
    if (res.status === 409) { $("stripbox").hidden = true; return; }
    if (res.status === 401) { await keyEntered(); return drawStrip(); }
    if (!res.ok) return setTimeout(drawStrip, 2000);
    if (res.ok) {
      const { leds, shown, columns } = await res.json();
      stripAfter = shown;
      const canvas = $("strip"), ctx = canvas.getContext("2d"), n = columns.length;
      if (n) {
        ctx.drawImage(canvas, -n, 0);
        const img = ctx.createImageData(n, leds);
        columns.forEach((col, x) => {
          for (let led = 0; led < leds; led++) {
            const o = ((leds - 1 - led) * n + x) * 4;
            for (let c = 0; c < 3; c++) img.data[o + c] = parseInt(col.substr(led * 6 + c * 2, 2), 16);
            img.data[o + 3] = 255;
          }
        });
        const tmp = h("canvas", { width: n, height: leds });
        tmp.getContext("2d").putImageData(img, 0, 0);
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(tmp, canvas.width - n, 0, n, canvas.height);
      }
    }
  } catch (e) { /* try again */ }
  setTimeout(drawStrip, 100);
}

// ----- a poi without an event stream (a board): asked every few seconds instead -----

// The library's digest (open to anyone) says when to load the lists again: read before
// them, so a change landing while they load is seen at the next round. A key dialog the
// performer closed is not opened again by this loop: it waits for a key, as the event
// stream does.
let digest = null;
async function poll() {
  for (;;) {
    try {
      const st = await api("GET", "/api/sync/status");
      if (st.libraryDigest !== digest) {
        digest = st.libraryDigest;
        await loadLibrary().catch((e) => { digest = null; throw e; });
      }
      await loadStatus();
      const k = await api("GET", "/api/clock");
      showClock(k.standing, k.errorBoundUs);
      if (visible("sync")) await loadSync();
    } catch (e) {
      // Otherwise the poi restarts or the Wi-Fi dropped: ask again.
      if (e.needKey) await keyEntered();
    }
    await new Promise((r) => setTimeout(r, 3000));
  }
}

TYPES.forEach((t, i) => $("ptype").append(h("option", { value: i }, t)));
// The features first: they say what the rest may ask for (asked again until they come).
async function start() {
  for (;;) {
    try { await loadConfig(); break; } catch (e) { fail(e); }
    await new Promise((r) => setTimeout(r, 2000));
  }
  if (!has("convert")) $("file").accept = "image/*,.rgb";
  showTab();
  if (!has("events")) return poll();
  refresh();
  api("GET", "/api/clock").then((k) => showClock(k.standing, k.errorBoundUs), () => {});
  followEvents();
  if (has("strip")) drawStrip();
}
start();
