// The search page: plain DOM, no framework, no build step. It only talks to this server.
"use strict";

// Results per page; ?k=N in the address changes it.
const PAGE_SIZE = Math.max(1, Number(new URLSearchParams(location.search).get("k")) || 24);

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("search-form"), query: $("query"), collection: $("collection"), target: $("target"),
  filterForm: $("filter-form"), where: $("where"),
  drop: $("drop"), file: $("image-file"), queryImage: $("query-image"), preview: $("query-preview"),
  caption: $("query-caption"), instruction: $("instruction"), weight: $("weight"), weightValue: $("weight-value"),
  apply: $("apply"), clear: $("clear-image"), status: $("status"), error: $("error"),
  results: $("results"), more: $("more"),
};

// The query being shown: a text, an uploaded image, or an item ("more like this").
const state = { text: "", file: null, item: null, offset: 0, previewUrl: null, busy: false };

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function errorMessage(status, body) {
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${(e.loc || []).slice(1).join(".") || "request"}: ${e.msg}`).join("; ");
  }
  if (body && typeof body.detail === "string") return body.detail;
  return `the server answered ${status}`;
}

async function call(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) throw new Error(errorMessage(response.status, body));
  return body;
}

function showError(message) {
  ui.error.textContent = message || "";
  ui.error.hidden = !message;
}

function baseName(path) {
  return path ? path.split(/[\\/]/).pop() : "";
}

// -- the request ----------------------------------------------------------------------
// The filter box holds expressions separated by ';' (a value may hold commas: "album in a,b").
function filters() {
  return ui.where.value.split(";").map((expression) => expression.trim()).filter(Boolean);
}

function requestFor(offset) {
  const common = { collection: ui.collection.value, target: ui.target.value, k: PAGE_SIZE, offset };
  const where = filters();
  const instruction = ui.instruction.value.trim();
  const weight = Number(ui.weight.value);
  if (state.file) {
    const form = new FormData();
    for (const [key, value] of Object.entries(common)) form.append(key, String(value));
    for (const expression of where) form.append("where", expression);
    form.append("image", state.file);
    if (instruction) { form.append("text", instruction); form.append("text_weight", String(weight)); }
    return { method: "POST", body: form };
  }
  const body = state.item
    ? { ...common, where, item_id: state.item.id, ...(instruction ? { text: instruction, text_weight: weight } : {}) }
    : { ...common, where, text: state.text };
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

function describeQuery() {
  const instruction = ui.instruction.value.trim();
  const extra = instruction ? ` + “${instruction}”` : "";
  const where = filters().length ? ` where ${filters().join("; ")}` : "";
  if (state.file) return `your image${extra}${where}`;
  if (state.item) return `“${state.item.label}”${extra}${where}`;
  return `“${state.text}”${where}`;
}

async function search(append = false) {
  if (state.busy || (!state.text && !state.file && !state.item)) return;
  state.busy = true;
  ui.more.disabled = true;
  const offset = append ? state.offset : 0;
  showError("");
  if (!append) ui.status.textContent = "Searching…";
  try {
    const page = await call("/search", requestFor(offset));
    if (!append) ui.results.replaceChildren();
    page.results.forEach((hit) => ui.results.append(card(hit)));
    state.offset = offset + page.results.length;
    const count = ui.results.children.length;
    ui.status.textContent = count
      ? `${count} result${count === 1 ? "" : "s"} for ${describeQuery()} in ${page.collection}`
      : `No results for ${describeQuery()}`;
    ui.more.hidden = !page.has_more;
  } catch (error) {
    ui.status.textContent = "";
    showError(`Search failed: ${error.message}`);
  } finally {
    state.busy = false;
    ui.more.disabled = false;
  }
}

// -- results --------------------------------------------------------------------------
// An image item imported as a vector, or fetched from a URL, has no file here to show.
function imageLabel(hit) {
  return baseName(hit.path) || hit.metadata.caption || hit.metadata.url || `#${hit.id}`;
}

function imageBody(hit, label) {
  if (!hit.thumbnail_url) return element("blockquote", { className: "thumb missing", textContent: label });
  return element("a", { className: "thumb", href: hit.image_url, target: "_blank", rel: "noopener" }, [
    element("img", { src: hit.thumbnail_url, alt: label, loading: "lazy" }),
  ]);
}

function card(hit) {
  const label = hit.kind === "image" ? imageLabel(hit) : hit.text;
  const body = hit.kind === "image" ? imageBody(hit, label) : element("blockquote", { textContent: hit.text });
  const meta = element("div", { className: "meta" }, [
    element("span", { className: "score", textContent: hit.score.toFixed(3), title: "cosine similarity" }),
    element("span", { className: "name", textContent: hit.kind === "image" ? label : `#${hit.id}`, title: label }),
  ]);
  const like = element("button", { type: "button", textContent: "More like this" });
  like.setAttribute("aria-label", `More like this: ${label}`);
  like.addEventListener("click", () => moreLikeThis(hit, label));
  return element("li", { className: "card" }, [body, meta, like]);
}

// -- the image query ------------------------------------------------------------------
function showQueryImage(src, caption) {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = src.startsWith("blob:") ? src : null;
  ui.preview.src = src;
  ui.caption.textContent = caption;
  ui.queryImage.hidden = false;
}

function useFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) { showError(`${file.name} is not an image`); return; }
  state.file = file;
  state.item = null;
  showQueryImage(URL.createObjectURL(file), `Similar to ${file.name || "the pasted image"}`);
  search();
}

function moreLikeThis(hit, label) {
  state.item = { id: hit.id, label };
  state.file = null;
  if (hit.thumbnail_url) showQueryImage(hit.thumbnail_url, `More like ${label}`);
  else { ui.preview.removeAttribute("src"); ui.caption.textContent = `More like “${label}”`; ui.queryImage.hidden = false; }
  window.scrollTo({ top: 0, behavior: "smooth" });
  search();
}

function clearImage() {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  Object.assign(state, { file: null, item: null, previewUrl: null });
  ui.file.value = "";
  ui.instruction.value = "";
  ui.queryImage.hidden = true;
}

// -- wiring ---------------------------------------------------------------------------
async function loadCollections() {
  try {
    const collections = await call("/collections");
    ui.collection.replaceChildren(...collections.map((c) =>
      element("option", { value: c.name, textContent: `${c.name} (${c.images} images, ${c.texts} texts)` })));
  } catch (error) {
    showError(`Cannot list collections: ${error.message}`);
  }
}

function wire() {
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.query.value.trim();
    if (!text) return;
    clearImage();
    state.text = text;
    search();
  });
  ui.filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    // The filters narrow the query on show; with none yet, the text typed in the search box.
    if (!state.text && !state.file && !state.item) state.text = ui.query.value.trim();
    search();
  });
  ui.file.addEventListener("change", () => useFile(ui.file.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    ui.drop.addEventListener(name, (event) => { event.preventDefault(); ui.drop.classList.add("over"); });
  }
  ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("over"));
  ui.drop.addEventListener("drop", (event) => {
    event.preventDefault();
    ui.drop.classList.remove("over");
    useFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) useFile(file);
  });
  ui.weight.addEventListener("input", () => { ui.weightValue.value = Number(ui.weight.value).toFixed(2); });
  ui.weight.addEventListener("change", () => { if (ui.instruction.value.trim()) search(); });
  ui.instruction.addEventListener("keydown", (event) => { if (event.key === "Enter") search(); });
  ui.apply.addEventListener("click", () => search());
  ui.clear.addEventListener("click", () => { clearImage(); if (state.text) search(); });
  ui.more.addEventListener("click", () => search(true));
  ui.collection.addEventListener("change", () => search());
  ui.target.addEventListener("change", () => search());
}

wire();
loadCollections();
