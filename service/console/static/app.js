// The vecserve console: plain JavaScript over the public HTTP API, nothing else.
// Every element is built with the DOM (never innerHTML from data), so payloads show as
// text, and the page's Content-Security-Policy needs no inline script or style.
"use strict";

const KEY_STORAGE = "vecserve.apiKey";
const FIELD_OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not"];
const LOGICAL_OPERATORS = ["$and", "$or", "$not"];
const IMAGE_MAX_SIDE = 512; // the image models look at 224 px: a larger upload buys nothing
const METRICS_EVERY_MS = 2000;
const METRICS_SAMPLES = 60;

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  collections: [], // descriptions, as GET /collections/{name} gives them
  current: null, // the selected collection's description
  tab: "search",
  mode: "text",
  image: null, // the dropped photo, resized, as a data URL
  cursor: null,
  metrics: { previous: null, series: { rate: [], latency: [], batch: [] }, timer: null },
};

const $ = (id) => document.getElementById(id);

// -- DOM ----------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function showError(id, error) {
  const el = $(id);
  if (!error) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.hidden = false;
  el.textContent = error instanceof ApiError ? error.describe() : String(error.message || error);
}

let toastTimer = null;
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 3000);
}

function formatValue(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// -- the API ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, name, message) {
    super(message);
    this.status = status;
    this.name = name;
  }

  describe() {
    return `${this.name} (${this.status}): ${this.message}`;
  }
}

async function api(method, path, body, { raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (state.key) headers["X-API-Key"] = state.key;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    setServerStatus(false);
    throw new ApiError(0, "Unreachable", "the server did not answer");
  }
  if (!response.ok) {
    let error = { error: "HttpError", message: response.statusText };
    try { error = await response.json(); } catch (_) { /* not JSON: keep the status text */ }
    const failure = new ApiError(response.status, error.error, error.message);
    if (response.status === 401) askForKey(failure);
    throw failure;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

const collectionPath = (name) => `/collections/${encodeURIComponent(name)}`;

// -- API key ------------------------------------------------------------------------------

function askForKey(error) {
  // The server's 401 message says whether no key was sent or the one sent is not valid.
  const refused = Boolean(error && state.key);
  $("gate-reason").textContent = !error
    ? "The API key this tab sends."
    : refused ? "The API key was refused." : "This server needs an API key.";
  $("key-error").hidden = !error;
  $("key-error").textContent = error ? error.describe() : "";
  if (error) $("key-button").textContent = "API key";
  showView("gate");
  $("key-input").focus();
}

function setKey(key) {
  state.key = key;
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  $("key-button").textContent = key ? "API key ✓" : "API key";
}

// -- views --------------------------------------------------------------------------------

function showView(view) {
  $("gate").hidden = view !== "gate";
  $("collections-view").hidden = view !== "collections";
  $("metrics-view").hidden = view !== "metrics";
  for (const button of $("views").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.view === view);
  }
  if (view === "metrics") sampleMetrics();
}

// Sampled from the moment a key works, whatever the view, so that the charts have a
// history when they are opened.
function startSampling() {
  if (state.metrics.timer === null) {
    sampleMetrics();
    state.metrics.timer = setInterval(sampleMetrics, METRICS_EVERY_MS);
  }
}

function setServerStatus(up) {
  const el = $("server-status");
  el.textContent = up ? "ready" : "unreachable";
  el.className = `status ${up ? "up" : "down"}`;
}

async function checkReady() {
  try {
    const response = await fetch("/readyz", { cache: "no-store" });
    const body = await response.json();
    $("server-status").textContent = body.status;
    $("server-status").className = `status ${response.ok ? "up" : "starting"}`;
  } catch (_) {
    setServerStatus(false);
  }
}

// -- collections --------------------------------------------------------------------------

async function loadCollections(select) {
  const { collections } = await api("GET", "/collections");
  state.collections = await Promise.all(
    collections.map((name) => api("GET", collectionPath(name))),
  );
  renderCollectionList();
  startSampling();
  const wanted = select ?? state.current?.name;
  const found = state.collections.find((c) => c.name === wanted);
  if (found) selectCollection(found, { keepTab: true });
  else if (state.collections.length && !state.current) selectCollection(state.collections[0]);
  else if (!found) clearSelection();
  showView("collections");
}

function placement(info) {
  return info.serving.device === "gpu" ? "GPU" : "CPU";
}

function renderCollectionList() {
  const list = $("collection-list");
  list.replaceChildren(
    ...state.collections.map((c) =>
      h(
        "li",
        {
          class: state.current?.name === c.name ? "selected" : "",
          "data-name": c.name,
          onclick: () => selectCollection(c),
        },
        h("div", { class: "name" }, c.name),
        h(
          "div",
          { class: "meta" },
          `${c.count.toLocaleString()} points · ${c.dim}-d · ${c.metric}`,
          h("span", { class: `badge ${placement(c).toLowerCase()}` }, placement(c)),
        ),
      ),
    ),
  );
  $("no-collections").hidden = state.collections.length > 0;
}

function clearSelection() {
  state.current = null;
  $("collection-detail").hidden = true;
  $("nothing-selected").hidden = false;
}

function fact(label, value, note) {
  return h(
    "div",
    { class: "fact" },
    h("span", { class: "label" }, label),
    h("strong", {}, value),
    note ? h("small", {}, note) : null,
  );
}

function selectCollection(info, { keepTab = false } = {}) {
  const changed = state.current?.name !== info.name;
  state.current = info;
  renderCollectionList();
  $("nothing-selected").hidden = true;
  $("collection-detail").hidden = false;
  $("detail-name").textContent = info.name;
  $("detail-uid").textContent = `uid ${info.uid}`;
  const serving = info.serving;
  const knobs = Object.entries(serving.default_params || {}).map(([k, v]) => `${k}=${v}`);
  const indexed = serving.size === info.count
    ? `${serving.size.toLocaleString()} indexed: up to date`
    : `${serving.size.toLocaleString()} of ${info.count.toLocaleString()} indexed`;
  const where = serving.device === "gpu"
    ? `GPU${serving.gpu_bytes ? `, ${formatBytes(serving.gpu_bytes)}` : ""}`
    : "CPU";
  const why = serving.placement_note
    || (serving.device === "gpu" ? "FAISS sees a GPU" : "no GPU visible to FAISS, or none asked for");
  $("facts").replaceChildren(
    fact("Points", info.count.toLocaleString()),
    fact("Dimension", info.dim),
    fact("Metric", info.metric),
    fact("Index", `${serving.family} · ${serving.storage}`, [indexed, ...knobs].join(" · ")),
    fact("Placement", where, why),
    fact("Embedder", info.embedder || "none", embedderNote(info)),
  );
  const embeds = Boolean(info.embedder);
  for (const button of $("search-modes").querySelectorAll("button")) {
    const needsEmbedder = button.dataset.mode === "text" || button.dataset.mode === "image";
    button.disabled = needsEmbedder && !embeds;
  }
  if (changed) {
    $("results").replaceChildren();
    $("search-summary").textContent = "";
    $("points-table").replaceChildren();
    $("points-summary").textContent = "";
    $("next-page").hidden = true;
    showError("search-error", null);
    showError("points-error", null);
    setMode(embeds ? "text" : "point");
  }
  showTab(keepTab || !changed ? state.tab : "search");
}

function embedderNote(info) {
  if (!info.embedder) return "vectors only";
  const kept = [info.store_source && "source", info.thumbnails && "thumbnails"].filter(Boolean);
  return kept.length ? `keeps ${kept.join(" and ")}` : "";
}

async function refreshCurrent() {
  if (!state.current) return;
  const info = await api("GET", collectionPath(state.current.name));
  const i = state.collections.findIndex((c) => c.name === info.name);
  if (i >= 0) state.collections[i] = info;
  selectCollection(info, { keepTab: true });
}

function confirmAction(title, text, ok) {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  const dialog = $("confirm-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function dropCurrent() {
  const info = state.current;
  const sure = await confirmAction(
    `Drop ${info.name}?`,
    `The collection and its ${info.count.toLocaleString()} points are deleted; its snapshots go with it. This cannot be undone.`,
    "Drop collection",
  );
  if (!sure) return;
  try {
    await api("DELETE", collectionPath(info.name));
    toast(`Dropped ${info.name}`);
    state.current = null;
    await loadCollections();
  } catch (error) {
    toast(error.describe ? error.describe() : String(error));
  }
}

async function createCollection(event) {
  event.preventDefault();
  const name = $("create-name").value.trim();
  const body = { metric: $("create-metric").value, index: $("create-index").value };
  const embedder = $("create-embedder").value.trim();
  if (embedder) body.embedder = embedder;
  if ($("create-dim").value) body.dim = Number($("create-dim").value);
  if ($("create-store-source").checked) body.store_source = true;
  if ($("create-thumbnails").checked) body.thumbnails = true;
  try {
    await api("PUT", collectionPath(name), body);
    $("create-dialog").close();
    toast(`Created ${name}`);
    await loadCollections(name);
  } catch (error) {
    showError("create-error", error);
  }
}

// -- tabs ---------------------------------------------------------------------------------

function showTab(tab) {
  state.tab = tab;
  for (const button of $("tabs").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.tab === tab);
  }
  for (const name of ["search", "points", "snapshots"]) $(`tab-${name}`).hidden = name !== tab;
  if (tab === "snapshots") loadSnapshots();
  if (tab === "points" && !$("points-table").childElementCount) browse();
}

function setMode(mode) {
  state.mode = mode;
  for (const button of $("search-modes").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.mode === mode);
  }
  for (const panel of $("search-form").querySelectorAll(".mode")) {
    panel.hidden = panel.dataset.mode !== mode;
  }
}

// -- filters ------------------------------------------------------------------------------

// A light check as the filter is typed: JSON, and operator names the server knows. The
// server checks the rest (types, depth) and its 4xx message is shown on submit.
function checkFilter(text) {
  if (!text.trim()) return { filter: null };
  let filter;
  try {
    filter = JSON.parse(text);
  } catch (error) {
    return { error: `not JSON yet: ${error.message}` };
  }
  if (filter === null || typeof filter !== "object" || Array.isArray(filter)) {
    return { error: 'a filter is a JSON object, e.g. {"color": "red"}' };
  }
  const problem = filterProblem(filter);
  return problem ? { error: problem } : { filter };
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function filterProblem(filter) {
  for (const [key, value] of Object.entries(filter)) {
    if (key.startsWith("$")) {
      if (!LOGICAL_OPERATORS.includes(key)) {
        return `unknown logical operator ${key}; use ${LOGICAL_OPERATORS.join(", ")}`;
      }
      if (key === "$not") {
        if (!isObject(value)) return "$not takes a filter object";
        const inner = filterProblem(value);
        if (inner) return inner;
      } else {
        if (!Array.isArray(value) || !value.every(isObject)) return `${key} takes a list of filter objects`;
        for (const part of value) {
          const inner = filterProblem(part);
          if (inner) return inner;
        }
      }
    } else if (isObject(value)) {
      const problem = operatorProblem(key, value);
      if (problem) return problem;
    }
  }
  return null;
}

function operatorProblem(field, operators) {
  if (!Object.keys(operators).length) return `${field}: an operator object needs an operator`;
  for (const [op, operand] of Object.entries(operators)) {
    if (!FIELD_OPERATORS.includes(op)) {
      const hint = op.startsWith("$") ? "" : ` (objects are matched field by field: write "${field}.${op}")`;
      return `${field}: unknown operator ${op}${hint}; the operators are ${FIELD_OPERATORS.join(" ")}`;
    }
    if ((op === "$in" || op === "$nin") && !Array.isArray(operand)) return `${field}: ${op} takes a list`;
    if (op === "$exists" && typeof operand !== "boolean") return `${field}: $exists takes true or false`;
    if (op === "$not") {
      if (!isObject(operand)) return `${field}: $not takes an operator object, e.g. {"$gt": 3}`;
      const inner = operatorProblem(field, operand);
      if (inner) return inner;
    }
  }
  return null;
}

// The search and the browse forms both ask for a filter, checked as it is typed, and a
// count: built here, in place of the form's slot, whose data attributes say the filter's
// example and the count's label and default. The fields' ids are the slot's id followed
// by -filter, -filter-check and -count. Returns the filter's reader (null when empty; it
// throws when the filter is not valid).
function filterAndCount(slotId) {
  const slot = $(slotId);
  const { example, count, countDefault } = slot.dataset;
  const input = h("textarea", { id: `${slotId}-filter`, class: "filter", rows: "1", placeholder: example, spellcheck: "false" });
  const check = h("p", { class: "filter-check", id: `${slotId}-filter-check` });
  slot.replaceWith(
    h("div", { class: "grow" }, h("label", { class: "field-label", for: input.id }, "Filter"), input, check),
    h("div", {},
      h("label", { class: "field-label", for: `${slotId}-count` }, count),
      h("input", { type: "number", id: `${slotId}-count`, min: "1", max: "1000", value: countDefault, class: "narrow" }),
    ),
  );
  const show = () => {
    const { error, filter } = checkFilter(input.value);
    check.textContent = error || (filter ? "✓ filter" : "");
    check.className = `filter-check ${error ? "bad" : "good"}`;
    input.classList.toggle("invalid", Boolean(error));
  };
  input.addEventListener("input", show);
  return () => {
    const { error, filter } = checkFilter(input.value);
    if (error) throw new Error(`filter: ${error}`);
    return filter;
  };
}

// -- search -------------------------------------------------------------------------------

function parseId(text) {
  const trimmed = text.trim();
  return /^-?(0|[1-9]\d*)$/.test(trimmed) && Number.isSafeInteger(Number(trimmed)) ? Number(trimmed) : trimmed;
}

function searchBody(filter, k) {
  const body = { k };
  if (filter) body.filter = filter;
  if (state.mode === "text") {
    const text = $("search-text").value.trim();
    if (!text) throw new Error("type something to search for");
    return ["search", { ...body, text }];
  }
  if (state.mode === "image") {
    if (!state.image) throw new Error("drop, paste or pick a photo first");
    return ["search", { ...body, image: state.image }];
  }
  if (state.mode === "point") {
    const raw = $("search-point").value;
    if (!raw.trim()) throw new Error("give a point id");
    const id = parseId(raw);
    return $("use-recommend").checked
      ? ["recommend", { ...body, positive: [id] }]
      : ["search", { ...body, id }];
  }
  let vector;
  try { vector = JSON.parse($("search-vector").value); } catch (_) { throw new Error("the vector is a JSON array of numbers"); }
  return ["search", { ...body, vector }];
}

let readSearchFilter = null;

async function runSearch(event) {
  event?.preventDefault();
  showError("search-error", null);
  let route, body;
  try {
    const filter = readSearchFilter();
    const k = Number($("search-count").value) || 10;
    [route, body] = searchBody(filter, k);
  } catch (error) {
    showError("search-error", error);
    return;
  }
  const started = performance.now();
  $("search-button").disabled = true;
  try {
    const { hits } = await api("POST", `${collectionPath(state.current.name)}/${route}`, body);
    const ms = performance.now() - started;
    $("search-summary").textContent = `${hits.length} result${hits.length === 1 ? "" : "s"} in ${ms.toFixed(0)} ms`;
    renderHits(hits);
  } catch (error) {
    showError("search-error", error);
  } finally {
    $("search-button").disabled = false;
  }
}

function payloadTable(payload) {
  const entries = Object.entries(payload || {});
  if (!entries.length) return h("p", { class: "muted small" }, "no payload");
  return h(
    "table",
    { class: "payload" },
    h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, formatValue(v))))),
  );
}

function renderHits(hits) {
  const container = $("results");
  releaseThumbnails("results");
  container.replaceChildren(
    ...hits.map((hit, rank) =>
      h(
        "article",
        { class: "hit", "data-id": String(hit.id) },
        h(
          "header",
          {},
          h("span", { class: "rank" }, `#${rank + 1}`),
          h("span", { class: "hit-id", title: String(hit.id) }, String(hit.id)),
          h("span", { class: "score", title: "score" }, hit.score.toFixed(4)),
        ),
        thumbnail(hit.id, "results", "thumb"),
        payloadTable(hit.payload),
        h(
          "footer",
          {},
          h("button", { type: "button", class: "small ghost", onclick: () => moreLikeThis(hit.id) }, "More like this"),
          h("button", { type: "button", class: "small ghost", onclick: () => showPoint(hit.id) }, "View"),
        ),
      ),
    ),
  );
  if (!hits.length) container.append(h("p", { class: "muted" }, "No results."));
}

function moreLikeThis(id) {
  setMode("point");
  $("search-point").value = String(id);
  $("use-recommend").checked = true;
  showTab("search");
  runSearch();
}

// -- thumbnails ---------------------------------------------------------------------------

// Object URLs of the thumbnails on show, released when the view they belong to is redrawn.
const thumbnailUrls = { results: [], points: [], dialog: [] };

function releaseThumbnails(view) {
  for (const url of thumbnailUrls[view]) URL.revokeObjectURL(url);
  thumbnailUrls[view] = [];
}

// A point's thumbnail into an <img> (fetched with the key header, so not a plain src).
// A point without one (a 404) leaves the image hidden.
async function loadThumbnail(img, id, view) {
  const query = typeof id === "string" && /^-?(0|[1-9]\d*)$/.test(id) ? "?id_type=str" : "";
  const path = `${collectionPath(state.current.name)}/points/${encodeURIComponent(String(id))}/thumbnail${query}`;
  try {
    const response = await api("GET", path, undefined, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    thumbnailUrls[view].push(url);
    img.src = url;
    img.hidden = false;
  } catch (_) {
    img.hidden = true;
  }
}

function thumbnail(id, view, className) {
  if (!state.current?.thumbnails) return null;
  const img = h("img", { class: className, alt: `thumbnail of ${id}`, hidden: true });
  loadThumbnail(img, id, view);
  return img;
}

// -- images -------------------------------------------------------------------------------

// A photo is resized in a canvas before upload: the model sees 224 px, so a 12 MP photo
// would only cost bandwidth and the server's body limit.
async function takeImage(file) {
  if (!file || !file.type.startsWith("image/")) {
    showError("search-error", new Error("that is not an image file"));
    return;
  }
  const url = URL.createObjectURL(file);
  try {
    const img = await new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the image could not be read"));
      image.src = url;
    });
    const scale = Math.min(1, IMAGE_MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
    canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
    state.image = canvas.toDataURL("image/jpeg", 0.9);
    $("image-preview").src = state.image;
    $("image-preview").hidden = false;
    $("dropzone-text").textContent = `${file.name || "pasted image"} · ${canvas.width}×${canvas.height}`;
    showError("search-error", null);
    setMode("image");
    await runSearch();
  } catch (error) {
    showError("search-error", error);
  } finally {
    URL.revokeObjectURL(url);
  }
}

function wireImageInput() {
  const zone = $("dropzone");
  $("image-input").addEventListener("change", (e) => takeImage(e.target.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    takeImage(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file && state.current?.embedder && state.tab === "search") {
      e.preventDefault();
      takeImage(file);
    }
  });
}

// -- points -------------------------------------------------------------------------------

let readBrowseFilter = null;

async function browse(event, cursor = null) {
  event?.preventDefault();
  showError("points-error", null);
  let filter;
  try {
    filter = readBrowseFilter();
  } catch (error) {
    showError("points-error", error);
    return;
  }
  const body = { limit: Number($("browse-count").value) || 25 };
  if (filter) body.filter = filter;
  if (cursor) body.cursor = cursor;
  try {
    const page = await api("POST", `${collectionPath(state.current.name)}/points/scroll`, body);
    state.cursor = page.next_cursor;
    renderPoints(page.points);
    $("next-page").hidden = !page.next_cursor;
    const matching = filter ? "matching " : "";
    $("points-summary").textContent = `${page.points.length} ${matching}point${page.points.length === 1 ? "" : "s"} on this page`;
  } catch (error) {
    showError("points-error", error);
  }
}

function renderPoints(points) {
  const columns = [];
  for (const point of points) {
    for (const key of Object.keys(point.payload)) if (!columns.includes(key)) columns.push(key);
  }
  const shown = columns.slice(0, 8);
  const table = $("points-table");
  releaseThumbnails("points");
  table.replaceChildren(
    h("thead", {}, h("tr", {}, h("th", {}, "id"), shown.map((c) => h("th", {}, c)), h("th", {}, ""))),
    h(
      "tbody",
      {},
      points.map((p) =>
        h(
          "tr",
          { "data-id": String(p.id) },
          h("td", { class: "mono" }, thumbnail(p.id, "points", "row-thumb"), String(p.id)),
          shown.map((c) => h("td", {}, c in p.payload ? formatValue(p.payload[c]) : "")),
          h(
            "td",
            { class: "actions" },
            h("button", { type: "button", class: "small ghost", onclick: () => showPoint(p.id) }, "View"),
            h("button", { type: "button", class: "small ghost", onclick: () => moreLikeThis(p.id) }, "Similar"),
            h("button", { type: "button", class: "small danger-ghost", onclick: () => deletePoint(p.id) }, "Delete"),
          ),
        ),
      ),
    ),
  );
  if (!points.length) {
    table.append(h("tbody", {}, h("tr", {}, h("td", { class: "muted" }, "No points."))));
  }
}

async function showPoint(id) {
  try {
    const query = typeof id === "string" && /^-?(0|[1-9]\d*)$/.test(id) ? "?id_type=str" : "";
    const point = await api("GET", `${collectionPath(state.current.name)}/points/${encodeURIComponent(String(id))}${query}`);
    $("point-title").textContent = `Point ${point.id}`;
    $("point-json").textContent = JSON.stringify(point.payload, null, 2);
    releaseThumbnails("dialog");
    $("point-thumbnail").hidden = true;
    if (state.current.thumbnails) loadThumbnail($("point-thumbnail"), point.id, "dialog");
    $("point-dialog").showModal();
  } catch (error) {
    if (state.tab === "points") showError("points-error", error);
    else showError("search-error", error);
  }
}

async function getById(event) {
  event.preventDefault();
  const raw = $("get-id").value;
  if (raw.trim()) await showPoint(parseId(raw));
}

async function deletePoint(id) {
  const sure = await confirmAction(`Delete point ${id}?`, "The point is deleted from the collection.", "Delete point");
  if (!sure) return;
  try {
    await api("POST", `${collectionPath(state.current.name)}/points/delete`, { ids: [id] });
    toast(`Deleted ${id}`);
    await refreshCurrent();
    await browse();
  } catch (error) {
    showError("points-error", error);
  }
}

// -- snapshots ----------------------------------------------------------------------------

async function loadSnapshots() {
  showError("snapshots-error", null);
  try {
    const { snapshots } = await api("GET", `${collectionPath(state.current.name)}/snapshots`);
    const table = $("snapshots-table");
    table.replaceChildren(
      h("thead", {}, h("tr", {}, ["name", "created", "points", "size", "sha256", ""].map((c) => h("th", {}, c)))),
      h(
        "tbody",
        {},
        snapshots.map((s) =>
          h(
            "tr",
            {},
            h("td", { class: "mono" }, s.name),
            h("td", {}, new Date(s.created_at).toLocaleString()),
            h("td", {}, s.points.toLocaleString()),
            h("td", {}, formatBytes(s.size)),
            h("td", { class: "mono", title: s.sha256 }, `${s.sha256.slice(0, 12)}…`),
            h("td", { class: "actions" }, h("button", { type: "button", class: "small", onclick: () => downloadSnapshot(s.name) }, "Download")),
          ),
        ),
      ),
    );
    if (!snapshots.length) table.append(h("tbody", {}, h("tr", {}, h("td", { class: "muted" }, "No snapshots yet."))));
  } catch (error) {
    showError("snapshots-error", error);
  }
}

async function createSnapshot() {
  $("create-snapshot").disabled = true;
  try {
    const snapshot = await api("POST", `${collectionPath(state.current.name)}/snapshots`);
    toast(`Snapshot ${snapshot.name} created`);
    await loadSnapshots();
  } catch (error) {
    showError("snapshots-error", error);
  } finally {
    $("create-snapshot").disabled = false;
  }
}

// The download needs the key header, so it is fetched and handed over as a blob.
async function downloadSnapshot(name) {
  try {
    const response = await api("GET", `${collectionPath(state.current.name)}/snapshots/${encodeURIComponent(name)}`, undefined, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = h("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    showError("snapshots-error", error);
  }
}

// -- metrics ------------------------------------------------------------------------------

function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[2] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

// The API's own traffic: the console's polling and static files are left out.
function isApiRoute(route) {
  return route && !/^\/(metrics|console|docs|redoc|openapi\.json|healthz|readyz)/.test(route);
}

function totals(samples) {
  const sum = (name, filter = () => true) =>
    samples.filter((s) => s.name === name && filter(s.labels)).reduce((a, s) => a + s.value, 0);
  const api = (labels) => isApiRoute(labels.route);
  const batchBuckets = samples
    .filter((s) => s.name === "vecserve_search_batch_size_bucket")
    .map((s) => ({ le: s.labels.le, count: s.value }));
  return {
    at: performance.now(),
    requests: sum("vecserve_requests_total", api),
    latencySum: sum("vecserve_request_duration_seconds_sum", api),
    latencyCount: sum("vecserve_request_duration_seconds_count", api),
    batchSum: sum("vecserve_search_batch_size_sum"),
    batchCount: sum("vecserve_search_batch_size_count"),
    batchBuckets,
    points: samples.filter((s) => s.name === "vecserve_collection_points"),
  };
}

async function sampleMetrics() {
  let now;
  try {
    const response = await api("GET", "/metrics", undefined, { raw: true });
    now = totals(parsePrometheus(await response.text()));
    showError("metrics-error", null);
  } catch (error) {
    showError("metrics-error", error);
    return;
  }
  const { previous, series } = state.metrics;
  if (previous) {
    const seconds = (now.at - previous.at) / 1000;
    const count = now.latencyCount - previous.latencyCount;
    const batches = now.batchCount - previous.batchCount;
    push(series.rate, (now.requests - previous.requests) / seconds);
    push(series.latency, count > 0 ? (1000 * (now.latencySum - previous.latencySum)) / count : null);
    push(series.batch, batches > 0 ? (now.batchSum - previous.batchSum) / batches : null);
  }
  state.metrics.previous = now;
  if (!$("metrics-view").hidden) renderCharts(now);
}

function push(list, value) {
  list.push(value);
  if (list.length > METRICS_SAMPLES) list.shift();
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

function lineChart(values, unit) {
  const width = 320;
  const height = 110;
  const pad = 4;
  const known = values.filter((v) => v !== null);
  const top = Math.max(1e-9, ...known) * 1.15;
  // The newest sample at the right edge; the history grows leftwards.
  const offset = METRICS_SAMPLES - values.length;
  const x = (i) => pad + ((offset + i) * (width - 2 * pad)) / (METRICS_SAMPLES - 1);
  const y = (v) => height - pad - (v / top) * (height - 2 * pad);
  let d = "";
  values.forEach((v, i) => {
    if (v === null) return;
    d += `${d && values[i - 1] !== null ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
  });
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  for (const f of [0.25, 0.5, 0.75]) {
    chart.append(svg("line", { x1: pad, x2: width - pad, y1: y(top * f), y2: y(top * f), class: "grid" }));
  }
  const points = values.filter((v) => v !== null).length;
  if (points === 1) {
    const i = values.findIndex((v) => v !== null);
    chart.append(svg("circle", { cx: x(i), cy: y(values[i]), r: 2.5, class: "dot" }));
  } else if (d) {
    const area = `${d}L${x(values.length - 1).toFixed(1)},${height - pad}L${x(values.findIndex((v) => v !== null)).toFixed(1)},${height - pad}Z`;
    chart.append(svg("path", { d: area, class: "area" }), svg("path", { d, class: "line" }));
  }
  chart.append(svg("text", { x: width - pad, y: 12, class: "axis", "text-anchor": "end" }, `max ${formatNumber(top / 1.15)} ${unit}`));
  return chart;
}

function barChart(buckets) {
  // Cumulative Prometheus buckets into counts per range.
  let bars = [];
  let below = 0;
  for (const bucket of buckets) {
    const bound = Number(bucket.le);
    const label = bucket.le === "+Inf" ? `>${Number(buckets.at(-2)?.le ?? 0)}` : `≤${bound}`;
    bars.push({ label, count: bucket.count - below });
    below = bucket.count;
  }
  // Up to the largest size seen (and at least six bars): the empty tail says nothing.
  const last = bars.reduce((at, bar, i) => (bar.count > 0 ? i : at), 0);
  bars = bars.slice(0, Math.max(6, last + 2));
  const width = 320;
  const height = 110;
  const top = Math.max(1, ...bars.map((b) => b.count));
  const step = width / Math.max(1, bars.length);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  bars.forEach((bar, i) => {
    const barHeight = ((height - 24) * bar.count) / top;
    chart.append(
      svg("rect", { x: i * step + 2, y: height - 14 - barHeight, width: step - 4, height: barHeight, class: "bar" }, svg("title", {}, `${bar.label}: ${bar.count}`)),
      svg("text", { x: i * step + step / 2, y: height - 2, class: "axis", "text-anchor": "middle" }, bar.label),
    );
  });
  return chart;
}

function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (Number.isInteger(v)) return v.toLocaleString();
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function chartCard(title, value, unit, chart) {
  return h(
    "section",
    { class: "card chart-card" },
    h("header", {}, h("h3", {}, title), h("span", { class: "figure" }, formatNumber(value), h("small", {}, ` ${unit}`))),
    chart,
  );
}

function renderCharts(now) {
  const { series } = state.metrics;
  const last = (list) => { for (let i = list.length - 1; i >= 0; i -= 1) if (list[i] !== null) return list[i]; return null; };
  $("charts").replaceChildren(
    chartCard("Request rate", last(series.rate), "req/s", lineChart(series.rate, "req/s")),
    chartCard("Mean latency", last(series.latency), "ms", lineChart(series.latency, "ms")),
    chartCard("Micro-batch size", last(series.batch), "queries/batch", lineChart(series.batch, "q")),
    chartCard("Batch sizes", now.batchCount, "batches since start", barChart(now.batchBuckets)),
    h(
      "section",
      { class: "card chart-card" },
      h("header", {}, h("h3", {}, "Points per collection")),
      h("table", { class: "payload" }, h("tbody", {}, now.points.map((s) => h("tr", {}, h("th", {}, s.labels.collection), h("td", {}, s.value.toLocaleString()))))),
    ),
  );
}

// -- start --------------------------------------------------------------------------------

async function start() {
  setKey(state.key);
  checkReady();
  readSearchFilter = filterAndCount("search");
  readBrowseFilter = filterAndCount("browse");
  wireImageInput();
  $("views").addEventListener("click", (e) => {
    const view = e.target.dataset?.view;
    if (view === "collections") loadCollections().catch(() => {});
    else if (view) showView(view);
  });
  $("tabs").addEventListener("click", (e) => e.target.dataset?.tab && showTab(e.target.dataset.tab));
  $("search-modes").addEventListener("click", (e) => e.target.dataset?.mode && !e.target.disabled && setMode(e.target.dataset.mode));
  $("search-form").addEventListener("submit", runSearch);
  $("browse-form").addEventListener("submit", (e) => browse(e));
  $("get-form").addEventListener("submit", getById);
  $("next-page").addEventListener("click", () => browse(null, state.cursor));
  $("create-snapshot").addEventListener("click", createSnapshot);
  $("drop-collection").addEventListener("click", dropCurrent);
  $("refresh-collection").addEventListener("click", () => refreshCurrent().catch((e) => toast(e.message)));
  $("new-collection").addEventListener("click", () => {
    $("create-form").reset();
    showError("create-error", null);
    $("create-dialog").showModal();
  });
  $("create-form").addEventListener("submit", createCollection);
  $("create-cancel").addEventListener("click", () => $("create-dialog").close());
  $("key-button").addEventListener("click", () => askForKey(null));
  $("key-forget").addEventListener("click", () => { setKey(""); $("key-input").value = ""; askForKey(null); });
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    setKey($("key-input").value.trim());
    $("key-input").value = "";
    try {
      await loadCollections();
    } catch (error) {
      if (error.status !== 401) toast(error.describe ? error.describe() : String(error));
    }
  });
  setMode("text");
  try {
    await loadCollections();
  } catch (error) {
    if (error.status !== 401) toast(error.describe ? error.describe() : String(error));
  }
}

document.addEventListener("DOMContentLoaded", start);
