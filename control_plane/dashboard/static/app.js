// PixelFlow dashboard: one module, no framework, no build step. The server renders each page's
// frame and CSRF token; this fills it from the same JSON API machines use (/v1, with the session
// cookie instead of a key). Everything is built with textContent, never innerHTML, so nothing a
// job carries (metadata, error messages, URLs) can become markup.

const page = document.body.dataset.page;
const role = document.body.dataset.role;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
// The job states' named sets, from the server's one definition (infra/lifecycle.py).
const TERMINAL = new Set(document.querySelector('meta[name="pixelflow-terminal"]').content.split(" "));
const ACTIVE = new Set(document.querySelector('meta[name="pixelflow-active"]').content.split(" "));

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const options = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (response.status === 401 && page !== "login" && page !== "signup") {
    location.assign("/dashboard/login"); // the session ended (expired, signed out elsewhere)
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function flash(message) {
  $("#flash").textContent = message;
}

function showError(target, error) {
  const node = typeof target === "string" ? $(target) : target;
  node.textContent = error ? (error instanceof ApiError || error instanceof Error ? error.message : String(error)) : "";
}

const integer = new Intl.NumberFormat("en");

function bytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${integer.format(n)} bytes`;
  const units = ["KB", "MB", "GB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]} (${integer.format(n)} bytes)`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function seconds(from, to) {
  if (!from || !to) return null;
  return `${((new Date(to) - new Date(from)) / 1000).toFixed(2)} s`;
}

function statusBadge(status) {
  return el("span", { class: `status status-${status}`, text: status });
}

// Forms before sign-in: field errors next to their field, the rest above the button.
function fieldErrors(form, error) {
  const general = form.querySelector("#form-error") || $("#form-error");
  for (const node of [...form.querySelectorAll(".error"), general]) node.textContent = "";
  for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
  const errors = (error.problem && error.problem.errors) || [];
  let first = null;
  for (const { path, message } of errors) {
    const name = path.replace(/^\$\./, "");
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      $(`#${input.id}-error`).textContent = message;
      first = first || input;
    }
  }
  if (!first) general.textContent = error.message;
  if (first) first.focus();
}

function credentialsForm(form, path) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      const next = await api("POST", path, {
        email: form.elements.email.value,
        password: form.elements.password.value,
      });
      location.assign(next.redirect);
    } catch (error) {
      fieldErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });
}

// Jobs list -------------------------------------------------------------------------------------

function jobsPage() {
  const form = $("#filters");
  const tbody = $("#jobs tbody");
  const cursors = [null]; // the cursor of each page seen, for "Newer"
  let timer = null;

  function query() {
    const params = new URLSearchParams({ limit: "20" });
    const status = form.elements.status.value;
    if (status) params.set("status", status);
    if (form.elements.created_after.value) params.set("created_after", `${form.elements.created_after.value}T00:00:00Z`);
    if (form.elements.created_before.value) params.set("created_before", `${form.elements.created_before.value}T00:00:00Z`);
    const cursor = cursors[cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    return params;
  }

  async function load() {
    clearTimeout(timer);
    let list;
    try {
      list = await api("GET", `/v1/jobs?${query()}`);
      showError("#list-error", null);
    } catch (error) {
      showError("#list-error", error);
      return;
    }
    tbody.replaceChildren(
      ...list.jobs.map((job) =>
        el(
          "tr",
          { "data-job-id": job.id },
          el("td", {}, el("a", { href: `/dashboard/jobs/${job.id}`, text: job.id.slice(0, 8), "aria-label": `Job ${job.id}` })),
          el("td", {}, statusBadge(job.status)),
          el("td", { text: when(job.created_at) }),
          el("td", { text: job.source ? `${job.source.format || "?"} ${job.source.width ?? "?"}×${job.source.height ?? "?"}` : "—" }),
          el("td", { text: job.error ? `${job.error.code}: ${job.error.message}` : "" }),
        ),
      ),
    );
    $("#empty").hidden = list.jobs.length > 0;
    $("#older").disabled = !list.next_cursor;
    $("#older").dataset.cursor = list.next_cursor || "";
    $("#newer").disabled = cursors.length === 1;
    if (list.jobs.some((job) => ACTIVE.has(job.status))) timer = setTimeout(load, 2000);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors.length = 1;
    load();
  });
  $("#older").addEventListener("click", () => {
    cursors.push($("#older").dataset.cursor);
    load();
  });
  $("#newer").addEventListener("click", () => {
    cursors.pop();
    load();
  });
  load();
}

// One job ---------------------------------------------------------------------------------------

function facts(target, rows) {
  $(target).replaceChildren(
    ...rows.filter(([, value]) => value !== null && value !== undefined).flatMap(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]),
  );
}

async function download(variant, button) {
  // A cross-origin link cannot name its download, so fetch the bytes (the bucket's CORS rule
  // allows this origin) and save them under the variant's name.
  button.disabled = true;
  try {
    // no-store: the preview <img> already fetched this URL without CORS, and variants are cached
    // as immutable, so the browser would answer from that entry, which lacks the CORS headers.
    const response = await fetch(variant.url, { cache: "no-store" });
    if (!response.ok) throw new Error(`download failed: HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    const ext = variant.format === "jpeg" ? "jpg" : variant.format;
    const link = el("a", { href: url, download: `${variant.id}.${ext}`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    flash(error.message);
  } finally {
    button.disabled = false;
  }
}

function variantCard(variant) {
  if (!variant.url) {
    // deleted by the retention sweeper: what it was stays, there is nothing to show or download
    return el("li", { class: "variant", "data-variant": variant.id }, el("strong", { text: variant.id }), el("span", { class: "dims", text: ` ${variant.format} · ${variant.width}×${variant.height} · deleted (retention)` }));
  }
  const button = el("button", { type: "button", text: "Download", "aria-label": `Download ${variant.id}` });
  button.addEventListener("click", () => download(variant, button));
  return el(
    "li",
    { class: "variant", "data-variant": variant.id },
    el(
      "figure",
      {},
      el("img", {
        src: variant.url,
        alt: `Variant ${variant.id}, ${variant.width}×${variant.height} ${variant.format}`,
        "data-width": String(variant.width),
        "data-height": String(variant.height),
        loading: "lazy",
      }),
      el(
        "figcaption",
        {},
        el("strong", { text: variant.id }),
        el("span", {
          class: "dims",
          text:
            ` ${variant.format} · ${variant.width}×${variant.height} · ${bytes(variant.bytes)}` +
            (variant.quality != null ? ` · quality ${variant.quality}` : "") +
            (variant.frames > 1 ? ` · ${variant.frames} frames` : ""),
        }),
      ),
    ),
    button,
  );
}

function deliveriesTable(deliveries) {
  if (deliveries.length === 0) return el("p", { text: "None: the job has no webhook, or has not ended yet." });
  return el(
    "table",
    { class: "list" },
    el("caption", { text: "Each sending of the job's webhook, with every attempt" }),
    el("thead", {}, el("tr", {}, ["Event", "URL", "State", "Attempts", "Sent"].map((h) => el("th", { scope: "col", text: h })))),
    el(
      "tbody",
      {},
      deliveries.map((d) =>
        el(
          "tr",
          {},
          el("td", { text: d.event }),
          el("td", { class: "url", text: d.url }),
          el("td", {}, statusBadge(d.status), d.last_error ? ` ${d.last_error}` : ""),
          el(
            "td",
            {},
            el(
              "ol",
              { class: "attempts" },
              d.history.map((a) =>
                el("li", {
                  text: `${when(a.at)}: ${a.response_status ? `HTTP ${a.response_status}` : a.error || "no answer"} in ${a.duration_ms} ms`,
                }),
              ),
            ),
            d.next_attempt_at ? `next attempt ${when(d.next_attempt_at)}` : "",
          ),
          el("td", { text: when(d.created_at) }),
        ),
      ),
    ),
  );
}

function jobPage() {
  const id = $("#job").dataset.jobId;
  let shownVariants = "";

  async function loadDeliveries() {
    try {
      const deliveries = await api("GET", `/v1/jobs/${id}/deliveries`);
      $("#deliveries").replaceChildren(deliveriesTable(deliveries));
      $("#redeliver").hidden = deliveries.length === 0;
    } catch (error) {
      showError("#job-error", error);
    }
  }

  async function load() {
    let job;
    try {
      job = await api("GET", `/v1/jobs/${id}`);
    } catch (error) {
      showError("#job-error", error.status === 404 ? "No such job (it may belong to another client)." : error);
      return;
    }
    document.title = `Job ${id.slice(0, 8)} (${job.status}) · PixelFlow`;
    facts("#summary", [
      ["Job", el("code", { text: job.id })],
      ["Status", statusBadge(job.status)],
      ["Error", job.error ? el("span", { class: "error", text: `${job.error.code}: ${job.error.message}` }) : null],
      ["Created", when(job.created_at)],
      ["Queued", job.queued_at ? when(job.queued_at) : null],
      ["Started", job.started_at ? when(job.started_at) : null],
      ["Finished", job.finished_at ? when(job.finished_at) : null],
      ["Waited in queue", seconds(job.queued_at, job.started_at)],
      ["Processing", seconds(job.started_at, job.finished_at)],
      ["Attempts", String(job.attempts)],
      // retention: when the original and the variants go, or went
      ["Original", job.original_deleted_at ? `deleted ${when(job.original_deleted_at)}` : job.original_expires_at ? `kept until ${when(job.original_expires_at)}` : null],
      ["Variants", job.outputs_deleted_at ? `deleted ${when(job.outputs_deleted_at)}` : job.outputs_expire_at ? `kept until ${when(job.outputs_expire_at)}` : null],
      ["Metadata", job.metadata ? el("code", { text: JSON.stringify(job.metadata) }) : null],
    ]);
    facts(
      "#source",
      job.source
        ? [
            ["Format", job.source.format],
            ["Size", job.source.width ? `${job.source.width}×${job.source.height}` : "read when processed"],
            ["Bytes", bytes(job.source.bytes)],
            // the described source, when the spec asked for `info`
            ["Frames", job.info && job.info.frames > 1 ? String(job.info.frames) : null],
            ["Colour profile", job.info ? job.info.profile : null],
            ["Colours", job.info ? `average ${job.info.average_color}, dominant ${job.info.dominant_color}` : null],
            ["Camera", job.info && job.info.camera ? [job.info.camera.make, job.info.camera.model, job.info.camera.lens].filter(Boolean).join(" · ") || null : null],
            ["Taken", job.info && job.info.camera ? job.info.camera.taken_at : null],
            ["BlurHash", job.info ? job.info.blurhash : null],
            ["ThumbHash", job.info ? job.info.thumbhash : null],
          ]
        : [["Original", job.status === "created" ? "not uploaded yet" : "no details recorded (it was refused or never read)"]],
    );
    const key = job.variants.map((v) => v.id).join(",");
    if (key !== shownVariants) {
      // Replace the previews only when the set changes, so polling does not reload images.
      shownVariants = key;
      $("#variants").replaceChildren(...job.variants.map(variantCard));
    }
    $("#no-variants").hidden = job.variants.length > 0;
    $("#no-variants").textContent = TERMINAL.has(job.status) ? "No variants." : "No variants yet.";
    $("#cancel").hidden = TERMINAL.has(job.status);
    if (TERMINAL.has(job.status)) {
      loadDeliveries();
      setTimeout(loadDeliveries, 3000); // the webhook goes out just after the job ends
    } else if (ACTIVE.has(job.status)) {
      setTimeout(load, 1000);
    } // `created`: nothing changes until someone uploads and starts it
  }

  $("#cancel").addEventListener("click", async () => {
    if (!confirm("Cancel this job?")) return;
    try {
      await api("POST", `/v1/jobs/${id}/cancel`);
      flash("Job canceled.");
    } catch (error) {
      flash(error.message);
    }
    load();
  });
  $("#redeliver").addEventListener("click", async () => {
    try {
      await api("POST", `/v1/jobs/${id}/deliveries/redeliver`);
      flash("The last event was queued again.");
    } catch (error) {
      flash(error.message);
    }
    setTimeout(loadDeliveries, 1500);
  });
  load();
}

// New job ---------------------------------------------------------------------------------------

const EXAMPLES = {
  "Web sizes (WebP)": {
    version: 1,
    pipeline: [
      { id: "large", steps: [{ op: "resize", width: 1200, fit: "inside" }], format: "webp", quality: 80 },
      { id: "thumb", action: "resize", width: 200, height: 200, format: "webp", quality: 75 },
    ],
  },
  "Product card (JPEG + square)": {
    version: 1,
    metadata: { product_id: "sku-1234" },
    pipeline: [
      { id: "card", action: "resize", width: 800, height: 600, format: "jpeg", quality: 82, progressive: true },
      { id: "square", steps: [{ op: "crop", aspect_ratio: "1:1", gravity: "attention" }, { op: "resize", width: 300 }], format: "webp" },
    ],
  },
  "Monochrome PNG with padding": {
    version: 1,
    pipeline: [
      { id: "mono", steps: [{ op: "resize", width: 400, fit: "inside" }, { op: "grayscale" }, { op: "pad", top: 10, right: 10, bottom: 10, left: 10, background: "#ffffff" }], format: "png" },
    ],
  },
};

// MIME type -> format name, from the server's format registry (pipeline/formats.py)
const FORMATS = Object.fromEntries(
  document.querySelector('meta[name="pixelflow-formats"]').content.split(" ").map((pair) => pair.split("=")),
);

// Where in the JSON text a path such as $.pipeline[0].steps[1].width is: [start, end] of that
// value, or of the deepest enclosing value that exists (a missing field points at its object).
export function locate(text, path) {
  const segments = [];
  for (const match of path.replace(/^\$/, "").matchAll(/\.([^.[\]]+)|\[(\d+)\]/g)) {
    segments.push(match[1] !== undefined ? match[1] : Number(match[2]));
  }
  let i = 0;
  const space = () => {
    while (i < text.length && /\s/.test(text[i])) i += 1;
  };
  const skipString = () => {
    i += 1;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i += 1;
  };
  const skipValue = () => {
    space();
    const open = text[i];
    if (open === '"') return skipString();
    if (open === "{" || open === "[") {
      const close = open === "{" ? "}" : "]";
      i += 1;
      space();
      while (i < text.length && text[i] !== close) {
        if (open === "{") {
          skipString();
          space();
          i += 1; // the colon
        }
        skipValue();
        space();
        if (text[i] === ",") i += 1;
        space();
      }
      i += 1;
      return undefined;
    }
    while (i < text.length && !/[\s,\]}]/.test(text[i])) i += 1;
    return undefined;
  };
  const find = (rest) => {
    space();
    const start = i;
    if (rest.length === 0) {
      skipValue();
      return [start, i];
    }
    const [head, ...tail] = rest;
    const open = text[i];
    if (open !== "{" && open !== "[") {
      skipValue();
      return [start, i];
    }
    i += 1;
    space();
    let index = 0;
    while (i < text.length && text[i] !== (open === "{" ? "}" : "]")) {
      if (open === "{") {
        const keyStart = i;
        skipString();
        const key = JSON.parse(text.slice(keyStart, i));
        space();
        i += 1;
        if (key === head) return find(tail);
      } else if (index === head) {
        return find(tail);
      }
      skipValue();
      space();
      if (text[i] === ",") i += 1;
      space();
      index += 1;
    }
    i += 1;
    return [start, i];
  };
  try {
    return find(segments);
  } catch {
    return null;
  }
}

function lineOf(text, offset) {
  return text.slice(0, offset).split("\n").length;
}

function newJobPage() {
  const form = $("#new-job");
  const textarea = $("#spec");
  const picker = $("#example");
  const files = []; // {file, width, height, format}
  let timer = null;
  let lastCheck = 0;
  let specOk = false;

  for (const name of Object.keys(EXAMPLES)) picker.append(el("option", { value: name, text: name }));
  textarea.value = JSON.stringify(EXAMPLES["Web sizes (WebP)"], null, 2);
  picker.addEventListener("change", () => {
    if (!picker.value) return;
    textarea.value = JSON.stringify(EXAMPLES[picker.value], null, 2);
    check();
  });

  function showProblems(problems) {
    const box = $("#spec-errors");
    specOk = problems.length === 0;
    textarea.setAttribute("aria-invalid", String(!specOk));
    textarea.classList.toggle("invalid", !specOk);
    if (specOk) {
      showError("#form-error", null);
      box.replaceChildren(el("p", { class: "ok", text: "The spec is valid." }));
      return;
    }
    const text = textarea.value;
    box.replaceChildren(
      el("p", { class: "error", text: problems.length === 1 ? "1 problem in the spec:" : `${problems.length} problems in the spec:` }),
      el(
        "ul",
        {},
        problems.map(({ path, message, at }) => {
          const range = at || (path ? locate(text, path) : null);
          const where = range ? ` (line ${lineOf(text, range[0])})` : "";
          const item = el("li", { class: "problem", "data-path": path || "" }, path ? el("code", { text: path }) : "", `${where}: ${message}`);
          if (range) {
            item.append(
              " ",
              el("button", {
                type: "button",
                class: "link",
                text: "Show in spec",
                onclick: () => {
                  textarea.focus();
                  textarea.setSelectionRange(range[0], range[1]);
                },
              }),
            );
          }
          return item;
        }),
      ),
    );
  }

  function showPrediction(result) {
    const table = $("#prediction");
    const source = files[0];
    table.hidden = !source || !result;
    if (table.hidden) return;
    $("#prediction-source").textContent = `for ${source.file.name} (${source.width}×${source.height})`;
    $("tbody", table).replaceChildren(
      ...result.variants.map((v) =>
        el("tr", { "data-variant": v.id }, el("td", { text: v.id }), el("td", { text: v.format || "as the source" }), el("td", { text: v.width ?? "?" }), el("td", { text: v.height ?? "?" }), el("td", { text: v.cost ?? "" })),
      ),
    );
  }

  async function check() {
    const ticket = ++lastCheck;
    let spec;
    try {
      spec = JSON.parse(textarea.value);
    } catch (error) {
      const position = Number((/position (\d+)/.exec(error.message) || [])[1]);
      const at = Number.isFinite(position) ? [position, position + 1] : null;
      showProblems([{ path: "", message: `not valid JSON: ${error.message}`, at }]);
      showPrediction(null);
      return;
    }
    const body = { spec };
    const source = files[0];
    if (source && source.width) body.source = { width: source.width, height: source.height, ...(source.format ? { format: source.format } : {}) };
    try {
      const result = await api("POST", "/v1/specs/validate", body);
      if (ticket !== lastCheck) return;
      showProblems(result.valid ? [] : result.errors.map((e) => ({ path: e.path, message: `${e.message} (${e.code})` })));
      showPrediction(result);
    } catch (error) {
      if (ticket !== lastCheck) return;
      const errors = error.problem.errors || [];
      showProblems(errors.length ? errors : [{ path: "", message: error.message }]);
      showPrediction(null);
    }
  }

  textarea.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  });

  async function dimensions(file) {
    const url = URL.createObjectURL(file);
    try {
      const image = new Image();
      image.src = url;
      await image.decode();
      return [image.naturalWidth, image.naturalHeight];
    } catch {
      return [null, null]; // a format this browser cannot show (TIFF): the server still reads it
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  async function addFiles(list) {
    for (const file of list) {
      const [width, height] = await dimensions(file);
      files.push({ file, width, height, format: FORMATS[file.type] || null });
    }
    $("#file-list").replaceChildren(
      ...files.map(({ file, width, height }, index) =>
        el(
          "li",
          {},
          `${file.name}: ${width ? `${width}×${height}, ` : ""}${bytes(file.size)} `,
          el("button", {
            type: "button",
            class: "link",
            text: "Remove",
            "aria-label": `Remove ${file.name}`,
            onclick: () => {
              files.splice(index, 1);
              addFiles([]);
            },
          }),
        ),
      ),
    );
    check();
  }

  $("#files").addEventListener("change", (event) => addFiles([...event.target.files]));
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles([...event.dataTransfer.files].filter((f) => f.type.startsWith("image/")));
  });

  function put(target, file, progress) {
    // XMLHttpRequest, not fetch: it reports upload progress. Straight to object storage.
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(target.method, target.url);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) progress.value = event.loaded / event.total;
      });
      xhr.addEventListener("load", () => (xhr.status < 300 ? resolve() : reject(new Error(`upload refused: HTTP ${xhr.status}`))));
      xhr.addEventListener("error", () => reject(new Error("upload failed (network or CORS)")));
      xhr.send(file);
    });
  }

  async function run(entry, spec) {
    const progress = el("progress", { max: 1, value: 0, "aria-label": `Upload of ${entry.file.name}` });
    const state = el("span", { class: "state", text: "creating the job" });
    const item = el("li", {}, el("span", { text: `${entry.file.name} ` }), progress, " ", state);
    $("#run-list").append(item);
    try {
      const job = await api("POST", "/v1/jobs", spec);
      item.dataset.jobId = job.id;
      state.textContent = "uploading";
      await put(job.upload.put, entry.file, progress);
      state.textContent = "starting";
      await api("POST", `/v1/jobs/${job.id}/start`);
      item.append(" ", el("a", { href: `/dashboard/jobs/${job.id}`, text: "open the job" }));
      for (;;) {
        const current = await api("GET", `/v1/jobs/${job.id}`);
        state.replaceChildren(statusBadge(current.status), current.error ? ` ${current.error.code}: ${current.error.message}` : "");
        if (TERMINAL.has(current.status)) return current;
        await new Promise((resolve) => setTimeout(resolve, 700));
      }
    } catch (error) {
      state.textContent = error.message;
      state.classList.add("error");
      return null;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#form-error", null);
    await check();
    if (files.length === 0) {
      showError("#form-error", "Choose or drop at least one image.");
      $("#files").focus();
      return;
    }
    if (!specOk) {
      showError("#form-error", "Fix the spec first: its problems are listed under it.");
      textarea.focus();
      return;
    }
    const spec = JSON.parse(textarea.value);
    $("#runs").hidden = false;
    $("#start").disabled = true;
    const batch = files.splice(0, files.length);
    await addFiles([]);
    const results = await Promise.all(batch.map((entry) => run(entry, spec)));
    $("#start").disabled = false;
    if (batch.length === 1 && results[0]) location.assign(`/dashboard/jobs/${results[0].id}`);
  });
  check();
}

// API keys --------------------------------------------------------------------------------------

function keysPage() {
  const tbody = $("#keys tbody");
  const owner = role === "owner";
  $("#new-key").hidden = !owner;

  async function load() {
    const keys = await api("GET", "/dashboard/api/keys");
    tbody.replaceChildren(
      ...keys.map((key) =>
        el(
          "tr",
          { "data-key-id": key.id },
          el("td", { text: key.name || "(no name)" }),
          el("td", {}, el("code", { text: `${key.prefix}…` })),
          el("td", { text: when(key.created_at) }),
          el("td", { text: key.revoked_at ? `revoked ${when(key.revoked_at)}` : "active" }),
          el(
            "td",
            {},
            owner && !key.revoked_at
              ? el("button", {
                  type: "button",
                  class: "danger",
                  text: "Revoke",
                  "aria-label": `Revoke key ${key.name || key.prefix}`,
                  onclick: async () => {
                    if (!confirm(`Revoke ${key.name || key.prefix}? Programs using it stop working at once.`)) return;
                    try {
                      await api("POST", `/dashboard/api/keys/${key.id}/revoke`);
                      flash(`Key ${key.prefix}… revoked.`);
                    } catch (error) {
                      showError("#keys-error", error);
                    }
                    load();
                  },
                })
              : "",
          ),
        ),
      ),
    );
  }

  $("#new-key").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("POST", "/dashboard/api/keys", { name: $("#key-name").value });
      $("#created").hidden = false;
      $("#new-key-value").value = created.key;
      $("#copied").textContent = "";
      $("#new-key-value").focus();
      $("#new-key-value").select();
      $("#key-name").value = "";
      load();
    } catch (error) {
      showError("#keys-error", error);
    }
  });
  copyButton($("#copy"), $("#new-key-value"), $("#copied"));
  $("#webhook-secret").hidden = !owner;
  $("#rotate").addEventListener("click", async () => {
    if (!confirm("Create a new webhook signing secret? The current ones keep working for 24 hours.")) return;
    try {
      const created = await api("POST", "/dashboard/api/webhook-secret");
      $("#secret-box").hidden = false;
      $("#secret-value").value = created.secret;
      $("#secret-copied").textContent = "";
      $("#secret-value").focus();
      $("#secret-value").select();
    } catch (error) {
      showError("#keys-error", error);
    }
  });
  copyButton($("#copy-secret"), $("#secret-value"), $("#secret-copied"));
  load().catch((error) => showError("#keys-error", error));
}

// Image URLs ------------------------------------------------------------------------------------

function imagesPage() {
  const tbody = $("#signing-keys tbody");
  const owner = role === "owner";
  $("#new-signing-key").hidden = !owner;

  async function load() {
    const keys = await api("GET", "/dashboard/api/signing-keys");
    tbody.replaceChildren(
      ...keys.map((key) =>
        el(
          "tr",
          { "data-kid": key.kid },
          el("td", {}, el("code", { text: key.kid })),
          el("td", { text: when(key.created_at) }),
          el("td", { text: key.retired_at ? `retired ${when(key.retired_at)}` : "live" }),
          el(
            "td",
            {},
            owner && !key.retired_at
              ? el("button", {
                  type: "button",
                  class: "danger",
                  text: "Retire",
                  "aria-label": `Retire signing key ${key.kid}`,
                  onclick: async () => {
                    if (!confirm(`Retire ${key.kid}? URLs it signed answer 403 at once.`)) return;
                    try {
                      await api("POST", `/dashboard/api/signing-keys/${encodeURIComponent(key.kid)}/retire`);
                      flash(`Signing key ${key.kid} retired.`);
                    } catch (error) {
                      showError("#signing-error", error);
                    }
                    load();
                  },
                })
              : "",
          ),
        ),
      ),
    );
  }

  $("#new-signing-key").addEventListener("click", async () => {
    try {
      const created = await api("POST", "/dashboard/api/signing-keys");
      $("#signing-created").hidden = false;
      $("#signing-kid").textContent = created.record.kid;
      $("#signing-secret").value = created.secret;
      $("#signing-copied").textContent = "";
      $("#signing-secret").focus();
      $("#signing-secret").select();
      load();
    } catch (error) {
      showError("#signing-error", error);
    }
  });
  copyButton($("#copy-signing"), $("#signing-secret"), $("#signing-copied"));

  $("#url-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("#url-error").textContent = "";
    const body = { format: $("#url-format").value };
    const job = $("#url-job").value.trim();
    const asset = $("#url-asset").value.trim();
    if (job) body.job = job;
    if (asset) body.asset = asset;
    if ($("#url-template").value.trim()) body.template = $("#url-template").value.trim();
    if ($("#url-width").value) body.width = Number($("#url-width").value);
    try {
      const built = await api("POST", "/dashboard/api/image-url", body);
      $("#url-result").hidden = false;
      $("#url-value").value = new URL(built.url, location.origin).href;
      $("#url-copied").textContent = "";
      $("#url-preview").src = built.url;
    } catch (error) {
      showError("#url-error", error);
    }
  });
  copyButton($("#copy-url"), $("#url-value"), $("#url-copied"));
  $("#url-preview").addEventListener("error", () => {
    $("#url-error").textContent = "The URL did not serve an image: open it to read the problem.";
  });
  load().catch((error) => showError("#signing-error", error));
}

// Templates -------------------------------------------------------------------------------------

function json(value) {
  return JSON.stringify(value, null, 2);
}

// One change of a diff: what kind, where (the validator's path notation), and the values.
function changeItem(change) {
  return el(
    "li",
    { class: `change change-${change.op}` },
    el("span", { class: "op", text: change.op }),
    " ",
    el("code", { class: "path", text: change.path }),
    change.op !== "add" ? el("del", { text: json(change.before) }) : null,
    change.op !== "remove" ? el("ins", { text: json(change.after) }) : null,
  );
}

function templatesPage() {
  const form = $("#diff-form");
  let current = null;

  async function compare(name, from, to) {
    showError("#diff-error", null);
    try {
      const diff = await api("GET", `/v1/templates/${encodeURIComponent(name)}/diff?from=${from}&to=${to}`);
      $("#diff-title").textContent = `Changes from version ${diff.from_version} to ${diff.to_version}`;
      $("#diff").replaceChildren(...diff.changes.map(changeItem));
      $("#no-changes").hidden = diff.changes.length > 0;
    } catch (error) {
      showError("#diff-error", error);
    }
  }

  async function show(name) {
    const template = await api("GET", `/v1/templates/${encodeURIComponent(name)}`);
    current = template.name;
    $("#template-name").textContent = template.name;
    $("#versions tbody").replaceChildren(
      ...template.versions.map((v) =>
        el(
          "tr",
          { "data-version": String(v.version) },
          el("td", { text: `${v.version}` }),
          el("td", { text: when(v.created_at) }),
          el("td", {}, el("details", {}, el("summary", { text: "Show" }), el("pre", { text: json({ spec: v.spec, parameters: v.parameters }) }))),
        ),
      ),
    );
    const numbers = template.versions.map((v) => v.version);
    for (const select of [form.elements.from, form.elements.to]) {
      select.replaceChildren(...numbers.map((n) => el("option", { value: String(n), text: String(n) })));
    }
    const latest = template.latest_version;
    form.elements.to.value = String(latest);
    form.elements.from.value = String(Math.max(latest - 1, 1));
    $("#template").hidden = false;
    await compare(template.name, form.elements.from.value, latest);
  }

  async function load() {
    const { templates } = await api("GET", "/v1/templates");
    $("#templates tbody").replaceChildren(
      ...templates.map((t) => {
        const link = el("a", { href: `#${encodeURIComponent(t.name)}`, text: t.name });
        return el("tr", {}, el("td", {}, link), el("td", { text: `${t.latest_version}` }), el("td", { text: when(t.updated_at) }));
      }),
    );
    $("#empty").hidden = templates.length > 0;
  }

  function fromHash() {
    const name = decodeURIComponent(location.hash.slice(1));
    if (name) show(name).catch((error) => showError("#templates-error", error.status === 404 ? "No such template." : error));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (current) compare(current, form.elements.from.value, form.elements.to.value);
  });
  window.addEventListener("hashchange", fromHash);
  load().catch((error) => showError("#templates-error", error));
  fromHash();
}

// Usage -----------------------------------------------------------------------------------------

async function usagePage() {
  // The same report as GET /v1/usage gives API keys: the last 30 UTC days, newest first here.
  const report = await api("GET", "/v1/usage");
  const days = report.days.slice().reverse();
  const formats = (d) => Object.entries(d.output_bytes).map(([format, n]) => `${format} ${bytes(n)}`).join(", ");
  // Which failures, by code: deadline_exceeded among them is engine time spent for nothing.
  const failures = (d) => Object.entries(d.failed_by_code || {}).map(([code, n]) => `${code} ${n}`).join(", ");
  $("#usage tbody").replaceChildren(
    ...days.map((d) =>
      el(
        "tr",
        {},
        el("td", { text: d.day }),
        el("td", { text: integer.format(d.jobs) }),
        el("td", { text: integer.format(d.succeeded) }),
        el("td", { text: integer.format(d.failed), title: failures(d) }),
        el("td", { text: integer.format(d.canceled) }),
        el("td", { text: d.source_megapixels.toFixed(2) }),
        el("td", { text: bytes(d.output_bytes_total), title: formats(d) }),
        el("td", { text: d.engine_cpu_seconds.toFixed(1) }),
        el("td", { text: `${integer.format(d.webhooks_delivered)} / ${integer.format(d.webhook_attempts)}` }),
        el("td", {
          text: `${integer.format(d.url_renders)} / ${integer.format(d.url_cache_hits)}`,
          title: `renders: ${d.url_render_cpu_seconds.toFixed(1)} CPU s, ${d.url_render_source_megapixels.toFixed(2)} MP`,
        }),
        el("td", { text: bytes(d.url_bytes_served) }),
      ),
    ),
  );
  $("#empty").hidden = days.length > 0;
}

// Team and invitations ----------------------------------------------------------------------------

function copyButton(button, input, status) {
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      document.execCommand("copy"); // older browsers, or a page not in a secure context
    }
    status.textContent = "Copied to the clipboard.";
  });
}

function teamPage() {
  async function load() {
    const people = await api("GET", "/dashboard/api/members");
    $("#members tbody").replaceChildren(
      ...people.map((p) => el("tr", {}, el("td", { text: p.email }), el("td", { text: p.role }), el("td", { text: when(p.created_at) }), el("td", { text: p.disabled_at ? "disabled" : "active" }))),
    );
    if (role !== "owner") return;
    const invites = await api("GET", "/dashboard/api/invites");
    $("#invites tbody").replaceChildren(
      ...invites.map((i) => el("tr", {}, el("td", { text: i.email }), el("td", { text: i.role }), el("td", { text: when(i.expires_at) }))),
    );
  }
  $("#inviting").hidden = role !== "owner";
  const form = $("#invite-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("POST", "/dashboard/api/invites", { email: form.elements.email.value, role: form.elements.role.value });
      fieldErrors(form, { problem: {}, message: "" });
      $("#invited").hidden = false;
      $("#invite-link").value = new URL(created.link, location.origin).href;
      $("#copied").textContent = "";
      $("#invite-link").focus();
      $("#invite-link").select();
      form.reset();
      load();
    } catch (error) {
      fieldErrors(form, error);
    }
  });
  copyButton($("#copy-link"), $("#invite-link"), $("#copied"));
  load().catch((error) => showError("#form-error", error));
}

function invitePage() {
  const form = $("#accept-form");
  const token = decodeURIComponent(location.hash.slice(1));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const next = await api("POST", "/auth/accept", { token, password: form.elements.password.value });
      location.replace(next.redirect); // replace: the link with its token leaves the history
    } catch (error) {
      fieldErrors(form, error);
    }
  });
  if (!token) $("#form-error").textContent = "This page needs the whole invitation link, including the part after #.";
}

// ------------------------------------------------------------------------------------------------

const logout = $("#logout");
if (logout) {
  logout.addEventListener("click", async () => {
    const next = await api("POST", "/auth/logout");
    location.assign(next.redirect);
  });
}

const PAGES = {
  login: () => credentialsForm($("#login-form"), "/auth/login"),
  signup: () => credentialsForm($("#signup-form"), "/auth/signup"),
  jobs: jobsPage,
  job: jobPage,
  new: newJobPage,
  keys: keysPage,
  images: imagesPage,
  templates: templatesPage,
  usage: usagePage,
  team: teamPage,
  invite: invitePage,
};
PAGES[page]();
// Forms work from here on (tests wait for this; a form submitted earlier posts to its page, so
// what was typed never lands in a URL).
document.body.dataset.ready = "true";
