// The web page: classify a clip, analyse a recording, follow its job, show and download results.
// Plain DOM built with textContent (the page's policy enforces Trusted Types with no policy, so
// no string can reach an HTML sink), and every request goes through `request` or `upload`, which
// send the API key once the service has asked for one.

const KEY_STORAGE = "classifier.apiKey";
const POLL_MS = 700;
const JOBS_REFRESH_MS = 3000;
const BOUT_ROWS = 10;
const THUMBS = 48;
const RESULT_FILES = [
  "frames.csv", "bouts.csv", "time_budget.csv", "transitions.csv", "boris.csv",
  "ethogram.png", "result.json", "results.zip",
];
const ACTIVE = new Set(["queued", "running"]);

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("aria-") || name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  node.append(...children);
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const byName = (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true });
const dash = "\u2014";

function sentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return trimmed;
  const first = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

function fmtBytes(bytes) {
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s / 60} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const fmtNumber = (value, digits = 2) =>
  typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : dash;
const fmtPercent = (fraction) => `${(fraction * 100).toFixed(1)}%`;

function fmtTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return dash;
  const today = new Date().toDateString() === when.toDateString();
  return today
    ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : when.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

// --- errors: the API's problem details in plain words ------------------------------------------

class ApiError extends Error {
  constructor(message, { status = 0, requestId = null } = {}) {
    super(message);
    this.status = status;
    this.requestId = requestId;
  }
}

function errorFromBody(status, statusText, body, requestId) {
  const said = body && typeof body === "object" ? body.detail || body.error || body.title : null;
  const message =
    typeof said === "string" && said
      ? said
      : `The service answered ${status}${statusText ? ` ${statusText}` : ""}`;
  const id = (body && typeof body === "object" && body.request_id) || requestId || null;
  return new ApiError(sentence(message), { status, requestId: id });
}

async function problemFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return errorFromBody(
    response.status, response.statusText, body, response.headers.get("x-request-id"),
  );
}

function showError(id, error) {
  const box = $(id);
  const message = error instanceof ApiError ? error.message : sentence(String(error.message || error));
  box.replaceChildren(el("p", { text: message }));
  if (error.requestId) {
    box.append(el("p", { class: "request-id", text: `Request id: ${error.requestId}` }));
  }
  box.hidden = false;
}

function hideError(id) {
  const box = $(id);
  box.hidden = true;
  box.replaceChildren();
}

// --- the API key: asked for on a 401, kept for this tab only --------------------------------------

let apiKey = sessionStorage.getItem(KEY_STORAGE);
let keyPrompt = null;

function renderKeyStatus() {
  $("key-status").hidden = !apiKey;
}

function setKey(value) {
  apiKey = value;
  if (value) sessionStorage.setItem(KEY_STORAGE, value);
  else sessionStorage.removeItem(KEY_STORAGE);
  renderKeyStatus();
}

function setupKeyDialog() {
  const dialog = $("key-dialog");
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key-input").value.trim();
    if (!value) {
      $("key-input").focus();
      return;
    }
    setKey(value);
    dialog.close("saved");
  });
  $("key-cancel").addEventListener("click", () => dialog.close("cancelled"));
  $("key-forget").addEventListener("click", () => setKey(null));
  renderKeyStatus();
}

/** Resolves true once the user gave a key, false if they declined; one dialog for all callers. */
function askForKey(reason) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("key-dialog");
  keyPrompt = new Promise((resolve) => {
    $("key-reason").textContent = reason;
    $("key-input").value = "";
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        keyPrompt = null;
        resolve(dialog.returnValue === "saved");
      },
      { once: true },
    );
    dialog.showModal();
  });
  return keyPrompt;
}

function withKey(headers) {
  const all = new Headers(headers);
  if (apiKey) all.set("Authorization", `Bearer ${apiKey}`);
  return all;
}

async function request(path, init = {}) {
  for (;;) {
    let response;
    try {
      response = await fetch(path, { ...init, headers: withKey(init.headers) });
    } catch (error) {
      throw new ApiError(`Could not reach the service (${error.message}).`);
    }
    if (response.status !== 401) return response;
    const problem = await problemFrom(response);
    if (!(await askForKey(problem.message))) throw problem;
  }
}

async function requestJSON(path, init = {}) {
  const response = await request(path, {
    ...init, headers: { Accept: "application/json", ...(init.headers || {}) },
  });
  if (!response.ok) throw await problemFrom(response);
  return response.status === 204 ? null : response.json();
}

async function requestBlob(path) {
  const response = await request(path);
  if (!response.ok) throw await problemFrom(response);
  const disposition = response.headers.get("content-disposition") || "";
  const named = /filename="?([^";]+)"?/i.exec(disposition);
  return { blob: await response.blob(), filename: named ? named[1] : null };
}

/** POST a multipart form with upload progress (fetch has none); resolves with the JSON body. */
function sendUpload(path, form, onProgress, onStart) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Accept", "application/json");
    if (apiKey) xhr.setRequestHeader("Authorization", `Bearer ${apiKey}`);
    xhr.upload.addEventListener("progress", (event) => {
      onProgress(event.loaded, event.lengthComputable ? event.total : null);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      resolve({
        status: xhr.status, statusText: xhr.statusText, body,
        requestId: xhr.getResponseHeader("x-request-id"),
      });
    });
    xhr.addEventListener("error", () => {
      reject(new ApiError(
        "The upload failed: the connection to the service was lost " +
        "(it may have refused the file, for instance as too large).",
      ));
    });
    xhr.addEventListener("abort", () => reject(new ApiError("The upload was stopped.")));
    onStart(xhr);
    xhr.send(form);
  });
}

async function upload(path, form, onProgress, onStart) {
  for (;;) {
    const answer = await sendUpload(path, form, onProgress, onStart);
    const problem = () =>
      errorFromBody(answer.status, answer.statusText, answer.body, answer.requestId);
    if (answer.status === 401) {
      const refused = problem();
      if (!(await askForKey(refused.message))) throw refused;
      continue;
    }
    if (answer.status < 200 || answer.status >= 300) throw problem();
    return answer.body;
  }
}

// --- tabs -------------------------------------------------------------------------------------

function selectTab(name, { focus = false } = {}) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !selected;
    if (selected && focus) tab.focus();
  }
}

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const nameOf = (tab) => tab.id.replace(/^tab-/, "");
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => {
      selectTab(nameOf(tab));
      history.replaceState(null, "", `#${nameOf(tab)}`);
    });
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
      selectTab(nameOf(next), { focus: true });
      history.replaceState(null, "", `#${nameOf(next)}`);
    });
  });
}

// --- files: chosen or dropped -------------------------------------------------------------------

function setupDrop(zone, input, onFiles) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) onFiles([...event.dataTransfer.files]);
  });
  input.addEventListener("change", () => onFiles([...input.files]));
}

function namesOf(files) {
  if (files.length === 1) return files[0].name;
  return `${files[0].name} \u2026 ${files[files.length - 1].name}`;
}

const totalSize = (files) => files.reduce((sum, file) => sum + file.size, 0);

// --- the model --------------------------------------------------------------------------------

let model = null;

async function loadModel() {
  try {
    const { models } = await requestJSON("/v1/models");
    if (!models.length) throw new ApiError("The service serves no model.");
    [model] = models;
  } catch (error) {
    $("model-summary").textContent = `The model could not be loaded: ${error.message}`;
    showError("clip-error", error);
    return;
  }
  const spec = model.input;
  const colour = spec.color_mode === "L" ? "grayscale" : "colour";
  $("model-summary").textContent =
    `Model ${model.name} ${model.version}: ${spec.frames} frames of ` +
    `${spec.width}\u00d7${spec.height} ${colour}, ${model.labels.length} labels` +
    (model.ready ? "" : " (loading)");
  $("clip-hint").textContent =
    `The model takes ${spec.frames} frames per clip, in file-name order: ` +
    "PNG, JPEG, BMP, TIFF, WebP or GIF, of any size (each is resized).";
  renderEmptyBars();
  renderEmptyBudget();
  renderClipChoice();
  renderRecChoice();
}

// --- clip -------------------------------------------------------------------------------------

let clipFiles = [];
let thumbUrls = [];

function renderClipChoice() {
  const chosen = $("clip-chosen");
  const wanted = model ? model.input.frames : null;
  const count = clipFiles.length;
  chosen.classList.toggle("warn", Boolean(count && wanted && count !== wanted));
  if (!count) chosen.textContent = "No frames chosen.";
  else {
    const noun = count === 1 ? "frame" : "frames";
    const mismatch = wanted && count !== wanted ? ` The model takes ${wanted}.` : "";
    chosen.textContent = `${count} ${noun} chosen (${namesOf(clipFiles)}).${mismatch}`;
  }
  $("clip-submit").disabled = !count || !model;
}

function chooseClipFiles(files) {
  clipFiles = files.sort(byName);
  for (const url of thumbUrls) URL.revokeObjectURL(url);
  thumbUrls = [];
  const thumbs = clipFiles.slice(0, THUMBS).map((file) => {
    const url = URL.createObjectURL(file);
    thumbUrls.push(url);
    const image = el("img", { src: url, alt: file.name, title: file.name, width: 32, height: 32 });
    image.addEventListener("error", () => image.classList.add("broken"), { once: true });
    return el("li", {}, image);
  });
  if (clipFiles.length > THUMBS) {
    thumbs.push(el("li", { class: "more", text: `+${clipFiles.length - THUMBS}` }));
  }
  $("clip-thumbs").replaceChildren(...thumbs);
  hideError("clip-error");
  renderClipChoice();
}

function barRow(label, probability, top) {
  const meter = el("meter", { min: 0, max: 1, value: probability ?? 0 });
  meter.setAttribute("aria-label", `${label} probability`);
  return el(
    "tr", { class: top ? "winner" : "" },
    el("th", { scope: "row", text: label }),
    el("td", {}, meter),
    el("td", { class: "num", text: probability == null ? dash : fmtPercent(probability) }),
  );
}

function renderEmptyBars() {
  $("clip-bars").replaceChildren(...(model ? model.labels : []).map((l) => barRow(l, null, false)));
}

function clearClipResult(note) {
  $("clip-label").textContent = dash;
  $("clip-confidence").textContent = "";
  $("clip-note").textContent = note;
  renderEmptyBars();
}

function renderClipResult(result) {
  $("clip-label").textContent = result.label;
  $("clip-confidence").textContent = `${fmtPercent(result.confidence)} confident`;
  const t = result.timings;
  $("clip-note").textContent =
    `${result.frames} frames, model ${result.model.name} ${result.model.version}; ` +
    `${fmtNumber(t.total_ms, 1)} ms in all, ${fmtNumber(t.inference_ms, 1)} ms of inference.`;
  const labels = model ? model.labels : Object.keys(result.probabilities);
  $("clip-bars").replaceChildren(
    ...labels.map((label) => barRow(label, result.probabilities[label], label === result.label)),
  );
}

async function classifyClip(event) {
  event.preventDefault();
  if (!clipFiles.length || !model) return;
  const form = new FormData();
  for (const file of clipFiles) form.append("frames", file, file.name);
  const button = $("clip-submit");
  button.disabled = true;
  button.textContent = "Classifying\u2026";
  $("clip-result").setAttribute("aria-busy", "true");
  hideError("clip-error");
  try {
    const result = await requestJSON(
      `/v1/models/${encodeURIComponent(model.name)}/classify`, { method: "POST", body: form },
    );
    renderClipResult(result);
  } catch (error) {
    clearClipResult("No result: see the message above.");
    showError("clip-error", error);
  } finally {
    button.textContent = "Classify";
    button.disabled = !clipFiles.length;
    $("clip-result").setAttribute("aria-busy", "false");
  }
}

// --- recording: source and submission --------------------------------------------------------------

const SOURCES = {
  video: {
    title: "Choose a video",
    hint: "One video (MP4, AVI, MOV, MKV\u2026): every frame gets a label.",
    accept: "video/*,.mp4,.avi,.mov,.mkv,.webm,.m4v",
    multiple: false,
  },
  frames: {
    title: "Choose images",
    hint: "An image sequence: one image per frame, in file-name order, with its frame rate.",
    accept: "image/*,.png,.jpg,.jpeg,.bmp,.tif,.tiff,.webp,.gif",
    multiple: true,
  },
};

let recSource = "video";
let recFiles = [];
let uploading = null; // the XMLHttpRequest while an upload runs

function setSource(source) {
  recSource = source;
  const spec = SOURCES[source];
  const input = $("rec-files");
  input.accept = spec.accept;
  input.multiple = spec.multiple;
  input.value = "";
  $("rec-drop-title").textContent = spec.title;
  $("rec-hint").textContent = spec.hint;
  $("fps-field").hidden = source !== "frames";
  recFiles = [];
  renderRecChoice();
}

function renderRecChoice() {
  const chosen = $("rec-chosen");
  if (!recFiles.length) chosen.textContent = "No file chosen.";
  else if (recSource === "video") {
    chosen.textContent = `${recFiles[0].name} (${fmtBytes(recFiles[0].size)})`;
  } else {
    const noun = recFiles.length === 1 ? "image" : "images";
    chosen.textContent =
      `${recFiles.length} ${noun} chosen (${namesOf(recFiles)}, ${fmtBytes(totalSize(recFiles))}).`;
  }
  $("rec-submit").disabled = !recFiles.length || !model || uploading !== null;
}

function chooseRecFiles(files) {
  if (!files.length) return;
  recFiles = recSource === "video" ? files.slice(0, 1) : files.sort(byName);
  hideError("rec-error");
  renderRecChoice();
}

const OPTION_FIELDS = [
  ["subject", "rec-subject"], ["session", "rec-session"], ["stride", "rec-stride"],
  ["min_bout_ms", "rec-min-bout"], ["bin_s", "rec-bin"],
];

function setUploadProgress(loaded, total) {
  const bar = $("upload-progress");
  if (total) {
    bar.value = Math.round((loaded / total) * 100);
    $("upload-text").textContent =
      `${fmtBytes(loaded)} of ${fmtBytes(total)} (${Math.round((loaded / total) * 100)}%)`;
  } else {
    bar.removeAttribute("value");
    $("upload-text").textContent = `${fmtBytes(loaded)} sent`;
  }
}

async function submitRecording(event) {
  event.preventDefault();
  if (!recFiles.length || !model || uploading) return;
  hideError("rec-error");
  const fps = $("rec-fps").value.trim();
  if (recSource === "frames" && !fps) {
    showError("rec-error", new ApiError("Enter the image sequence's frames per second."));
    $("rec-fps").focus();
    return;
  }
  // Fields before files, so the service knows its parameters before the bytes arrive.
  const form = new FormData();
  if (recSource === "frames") form.append("fps", fps);
  for (const [name, id] of OPTION_FIELDS) {
    const value = $(id).value.trim();
    if (value) form.append(name, value);
  }
  if (recSource === "video") form.append("video", recFiles[0], recFiles[0].name);
  else for (const file of recFiles) form.append("frames", file, file.name);

  stopFollowing();
  resetJobView(recSource === "video" ? recFiles[0].name : `${recFiles.length} images`);
  $("upload-text").textContent = "Starting\u2026";
  $("job-cancel").disabled = false;
  $("rec-submit").disabled = true;
  try {
    const job = await upload(
      `/v1/models/${encodeURIComponent(model.name)}/recordings`, form, setUploadProgress,
      (xhr) => { uploading = xhr; },
    );
    $("upload-progress").value = 100;
    $("upload-text").textContent = `Done (${fmtBytes(totalSize(recFiles))})`;
    uploading = null;
    history.replaceState(null, "", `#job=${job.id}`);
    refreshJobs();
    followJob(job);
  } catch (error) {
    $("upload-text").textContent = "Not uploaded";
    $("job-cancel").disabled = true;
    showError("rec-error", error);
  } finally {
    uploading = null;
    renderRecChoice();
  }
}

// --- recording: the job and its progress -----------------------------------------------------------

let following = 0; // bumped to stop an older job's polling loop
let currentJob = null;
let ethogramUrl = null;

function stopFollowing() {
  following += 1;
}

function jobTitle(job) {
  const recording = job.recording || {};
  const parts = [recording.filename || "recording"];
  if (job.subject) parts.push(`subject ${job.subject}`);
  if (job.session) parts.push(`session ${job.session}`);
  return parts.join(", ");
}

function resetJobView(name) {
  currentJob = null;
  $("job-name").textContent = name;
  $("upload-progress").value = 0;
  $("upload-text").textContent = dash;
  $("job-progress").value = 0;
  $("job-text").textContent = dash;
  $("job-cancel").disabled = true;
  clearResults();
}

function renderJob(job) {
  currentJob = job;
  $("job-name").textContent = `${jobTitle(job)} (job ${job.id.slice(0, 8)})`;
  const bar = $("job-progress");
  const text = $("job-text");
  const progress = job.progress || {};
  const done = progress.frames_done ?? 0;
  if (job.status === "queued") {
    bar.value = 0;
    text.textContent = "Queued";
  } else if (job.status === "running") {
    if (progress.percent == null) {
      bar.removeAttribute("value");
      text.textContent = `Running: ${done} frames done`;
    } else {
      bar.value = progress.percent;
      const of = progress.frames_total == null ? "" : ` of ${progress.frames_total}`;
      const left = progress.seconds_left == null ? "" : `, about ${fmtDuration(progress.seconds_left)} left`;
      text.textContent = `${done}${of} frames (${Math.floor(progress.percent)}%)${left}`;
    }
  } else if (job.status === "succeeded") {
    bar.value = 100;
    text.textContent = `Done: ${done} frames (100%)`;
  } else if (job.status === "failed") {
    bar.value = progress.percent ?? 0;
    text.textContent = "Failed";
    const reason = job.error && job.error.message ? job.error.message : "no reason given";
    showError("rec-error", new ApiError(`The job failed: ${sentence(reason)}`));
  } else if (job.status === "cancelled") {
    bar.value = progress.percent ?? 0;
    text.textContent = "Cancelled";
  }
  $("job-cancel").disabled = !ACTIVE.has(job.status);
}

async function followJob(job) {
  stopFollowing();
  const mine = following;
  hideError("rec-error");
  renderJob(job);
  let failures = 0;
  let lastListRefresh = Date.now();
  while (ACTIVE.has(job.status)) {
    await sleep(POLL_MS);
    if (mine !== following) return;
    try {
      job = await requestJSON(`/v1/jobs/${encodeURIComponent(job.id)}`);
      failures = 0;
    } catch (error) {
      failures += 1;
      if (error.status === 404 || failures >= 5) {
        showError("rec-error", error);
        return;
      }
      continue;
    }
    if (mine !== following) return;
    renderJob(job);
    if (Date.now() - lastListRefresh > JOBS_REFRESH_MS) {
      lastListRefresh = Date.now();
      refreshJobs();
    }
  }
  refreshJobs();
  if (job.status === "succeeded") await showResults(job, mine);
}

async function openJob(id) {
  stopFollowing();
  selectTab("recording");
  history.replaceState(null, "", `#job=${id}`);
  resetJobView("Opening\u2026");
  hideError("rec-error");
  try {
    const job = await requestJSON(`/v1/jobs/${encodeURIComponent(id)}`);
    $("upload-text").textContent = "Uploaded earlier";
    $("upload-progress").value = 100;
    followJob(job);
  } catch (error) {
    $("job-name").textContent = "None";
    showError("rec-error", error);
  }
}

async function cancelJob(id) {
  try {
    // Look first: DELETE on a job that has just finished would delete its results instead.
    const now = await requestJSON(`/v1/jobs/${encodeURIComponent(id)}`);
    const job = ACTIVE.has(now.status)
      ? await requestJSON(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" })
      : now;
    if (job && currentJob && job.id === currentJob.id) renderJob(job);
  } catch (error) {
    showError("rec-error", error);
  }
  refreshJobs();
}

function cancelCurrent() {
  if (uploading) uploading.abort();
  else if (currentJob) cancelJob(currentJob.id);
}

// --- recording: results ---------------------------------------------------------------------------

function placeholderRow(columns) {
  return el("tr", { class: "placeholder" }, ...Array.from({ length: columns }, () => el("td", { text: dash })));
}

function renderEmptyBudget() {
  const labels = model ? model.labels : [];
  $("budget-body").replaceChildren(
    ...labels.map((label) => el(
      "tr", { class: "placeholder" },
      el("th", { scope: "row", text: label }),
      ...Array.from({ length: 4 }, () => el("td", { class: "num", text: dash })),
    )),
  );
}

function renderDownloads(links) {
  const names = links ? Object.keys(links).filter((name) => name !== "self") : RESULT_FILES;
  $("downloads").replaceChildren(...names.map((name) => {
    const button = el("button", { type: "button", class: "download", text: name, disabled: !links });
    if (links) {
      button.setAttribute("aria-label", `Download ${name}`);
      button.addEventListener("click", () => download(name, links[name], button));
    }
    return el("li", {}, button);
  }));
}

function clearResults() {
  if (ethogramUrl) URL.revokeObjectURL(ethogramUrl);
  ethogramUrl = null;
  const image = $("ethogram");
  image.hidden = true;
  $("ethogram-empty").hidden = false;
  image.removeAttribute("src");
  image.alt = "";
  $("ethogram-caption").textContent = "Behaviour over time, one row per label.";
  $("rec-summary").textContent =
    "The ethogram, time budget, bouts and every export appear here when a job succeeds.";
  renderDownloads(null);
  renderEmptyBudget();
  $("bouts-count").textContent = "\u00a0";
  $("bouts-body").replaceChildren(...Array.from({ length: BOUT_ROWS }, () => placeholderRow(6)));
}

async function download(name, path, button) {
  button.disabled = true;
  try {
    const { blob, filename } = await requestBlob(path);
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename || name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    showError("rec-error", error);
  } finally {
    button.disabled = false;
  }
}

function renderBudget(rows) {
  $("budget-body").replaceChildren(...rows.map((row) => el(
    "tr", {},
    el("th", { scope: "row", text: row.label }),
    el("td", { class: "num", text: fmtNumber(row.total_s) }),
    el("td", { class: "num", text: `${fmtNumber(row.percent, 1)}%` }),
    el("td", { class: "num", text: String(row.bouts) }),
    el("td", { class: "num", text: fmtNumber(row.mean_bout_s) }),
  )));
}

function renderBouts(bouts) {
  const shown = bouts.slice(0, BOUT_ROWS);
  $("bouts-count").textContent = bouts.length > BOUT_ROWS
    ? `${bouts.length} bouts; the first ${BOUT_ROWS} are shown, bouts.csv has them all.`
    : `${bouts.length} ${bouts.length === 1 ? "bout" : "bouts"}.`;
  const rows = shown.map((bout) => el(
    "tr", {},
    el("td", { class: "num", text: String(bout.bout) }),
    el("td", { text: bout.label }),
    el("td", { class: "num", text: fmtNumber(bout.start_s) }),
    el("td", { class: "num", text: fmtNumber(bout.end_s) }),
    el("td", { class: "num", text: fmtNumber(bout.duration_s) }),
    el("td", { class: "num", text: fmtNumber(bout.mean_confidence) }),
  ));
  while (rows.length < BOUT_ROWS) {
    const filler = placeholderRow(6);
    filler.className = "filler";
    filler.setAttribute("aria-hidden", "true");
    rows.push(filler);
  }
  $("bouts-body").replaceChildren(...rows);
}

async function showResults(job, mine) {
  const links = job.links || {};
  renderDownloads(links);
  const recording = job.recording || {};
  const duration = recording.duration_s == null ? "" : `, ${fmtDuration(recording.duration_s)}`;
  const fps = recording.fps == null ? "" : ` at ${fmtNumber(recording.fps, 2)} fps`;
  $("rec-summary").textContent =
    `${recording.filename || "Recording"}: ${recording.frames ?? "?"} frames${duration}${fps}; ` +
    `model ${job.model ? `${job.model.name} ${job.model.version}` : "?"}.`;
  try {
    const [ethogram, result] = await Promise.all([
      links["ethogram.png"] ? requestBlob(links["ethogram.png"]) : null,
      links["result.json"] ? requestJSON(links["result.json"]) : null,
    ]);
    if (mine !== following) return;
    if (ethogram) {
      if (ethogramUrl) URL.revokeObjectURL(ethogramUrl);
      ethogramUrl = URL.createObjectURL(ethogram.blob);
      const image = $("ethogram");
      image.src = ethogramUrl;
      image.alt = `Ethogram of ${recording.filename || "the recording"}: the label of every frame over time.`;
      image.hidden = false;
      $("ethogram-empty").hidden = true;
      $("ethogram-caption").textContent = `${recording.filename || "Recording"}, one row per label.`;
    }
    if (result) {
      renderBudget(result.time_budget || []);
      renderBouts(result.bouts || []);
    }
  } catch (error) {
    showError("rec-error", error);
  }
}

// --- recent jobs -----------------------------------------------------------------------------------

let jobsShown = "";

function statusText(job) {
  if (job.status === "running" && job.progress && job.progress.percent != null) {
    return `running ${Math.floor(job.progress.percent)}%`;
  }
  return job.status;
}

function jobRow(job) {
  const name = jobTitle(job);
  const open = el("button", { type: "button", class: "small", text: "Open" });
  open.setAttribute("aria-label", `Open the job for ${name}`);
  open.addEventListener("click", () => openJob(job.id));
  const actions = el("td", { class: "row-actions" }, open);
  if (ACTIVE.has(job.status)) {
    const cancel = el("button", { type: "button", class: "small", text: "Cancel" });
    cancel.setAttribute("aria-label", `Cancel the job for ${name}`);
    cancel.addEventListener("click", () => cancelJob(job.id));
    actions.append(cancel);
  }
  return el(
    "tr", { "data-job": job.id },
    el("td", { class: "job-file", text: name, title: name }),
    el("td", {}, el("span", { class: `status status-${job.status}`, text: statusText(job) })),
    el("td", { class: "when", text: fmtTime(job.created_at) }),
    actions,
  );
}

async function refreshJobs() {
  let list;
  try {
    list = await requestJSON("/v1/jobs?limit=20");
  } catch (error) {
    $("jobs-empty").hidden = false;
    $("jobs-empty").textContent = `The job list could not be loaded: ${error.message}`;
    return;
  }
  const jobs = list.jobs || [];
  const summary = JSON.stringify(jobs.map((job) => [job.id, statusText(job)]));
  if (summary === jobsShown) return; // unchanged: keep the rows (and keyboard focus) as they are
  jobsShown = summary;
  $("jobs-body").replaceChildren(...jobs.map(jobRow));
  $("jobs-empty").hidden = jobs.length > 0;
  $("jobs-empty").textContent = "No jobs yet.";
}

// --- start --------------------------------------------------------------------------------------------

function start() {
  setupKeyDialog();
  setupTabs();
  // A file dropped outside a drop zone must not replace the page.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
  setupDrop($("clip-drop"), $("clip-files"), chooseClipFiles);
  setupDrop($("rec-drop"), $("rec-files"), chooseRecFiles);
  $("clip-form").addEventListener("submit", classifyClip);
  $("rec-form").addEventListener("submit", submitRecording);
  for (const radio of document.querySelectorAll('input[name="source"]')) {
    radio.addEventListener("change", () => setSource(radio.value));
  }
  $("job-cancel").addEventListener("click", cancelCurrent);
  $("jobs-refresh").addEventListener("click", () => {
    jobsShown = "";
    refreshJobs();
  });
  clearResults();

  const hash = location.hash.slice(1);
  if (hash.startsWith("job=")) selectTab("recording");
  else if (hash === "recording") selectTab("recording");
  loadModel().then(() => {
    if (hash.startsWith("job=")) openJob(decodeURIComponent(hash.slice(4)));
  });
  refreshJobs();
  document.documentElement.dataset.ready = "true";
}

start();
