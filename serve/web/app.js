// The page talks to the same API as any other client: GET /v1/models once, then one
// GET /v1/samples/stream per run. It reads the stream with fetch rather than EventSource so that it
// sees the status and JSON error of a refused request (400, 429) and can stop a run by aborting
// the fetch, which makes the server cancel the sampler.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
let limits = {};
const models = {}; // name -> its /v1/models entry

async function init() {
  const status = $("#status");
  let ok = false;
  try {
    const r = await fetch("/v1/models");
    const info = await r.json();
    limits = info.limits;
    const sel = $("#model");
    for (const m of info.models) {
      models[m.name] = m;
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = `${m.name} (${m.channels}×${m.height}×${m.width}, T=${m.timesteps}, ${m.prediction})`;
      o.dataset.t = m.timesteps;
      sel.append(o);
    }
    for (const sel of document.querySelectorAll(".sampler")) {
      const want = sel.value;
      sel.replaceChildren(...info.samplers.map((name) => new Option(name, name, false, name === want)));
    }
    if (info.guidance) {
      $("#guidance").value = info.guidance.default;
      $("#guidance").max = Math.min(10, info.guidance.max);
    }
    $("#n").max = limits.max_n;
    $("#n").value = Math.min(16, limits.max_n);
    status.textContent = `${info.models.length} model(s) · max ${limits.max_n} images, ${limits.max_steps} steps · ${limits.workers} worker(s), queue ${limits.queue}`;
    ok = true;
  } catch (e) {
    status.textContent = "cannot load /v1/models: " + e;
  }
  for (const p of document.querySelectorAll(".panel")) setupPanel(p);
  // Steps are bounded by the chosen model's T and the server's limit.
  const syncSteps = () => {
    const o = $("#model").selectedOptions[0];
    const most = Math.min(Number(o ? o.dataset.t : 1000), limits.max_steps || 1000);
    for (const s of document.querySelectorAll(".steps")) {
      s.max = most;
      if (Number(s.value) > most) s.value = most;
    }
  };
  $("#model").onchange = () => { syncSteps(); syncClasses(); };
  $("#class").onchange = () => {
    // "all" draws per_class images of each class in turn, one grid row per class: ask for them all.
    const m = models[$("#model").value];
    if ($("#class").value === "all" && m) $("#n").value = Math.min(limits.max_n, m.num_classes * m.per_class);
    syncGuidance();
  };
  $("#guidance").oninput = syncGuidance;
  if (ok) { syncSteps(); syncClasses(); }
  document.body.dataset.ready = ok ? "1" : "error";
  $("#reseed").onclick = () => { $("#seed").value = Math.floor(Math.random() * 1e9); };
  $("#compare").onclick = () => { for (const p of document.querySelectorAll(".panel")) p.run(); };
}

// syncClasses shows the class picker for a class-conditional model only, with its class names
// (values are indices, which no name can make ambiguous), keeping the choice when it still exists.
function syncClasses() {
  const m = models[$("#model").value];
  const k = m ? m.num_classes || 0 : 0;
  const sel = $("#class");
  const want = sel.value;
  const opts = [new Option("none", ""), new Option("all", "all")];
  (m && m.classes || []).forEach((name, i) => opts.push(new Option(name === String(i) ? name : `${i}: ${name}`, String(i))));
  sel.replaceChildren(...opts);
  sel.value = opts.some((o) => o.value === want) ? want : "";
  $("#class-controls").hidden = k === 0;
  syncGuidance();
}

// syncGuidance enables the guidance slider only when a class is chosen (guidance without a class is
// refused by the server) and shows its value.
function syncGuidance() {
  const off = $("#class-controls").hidden || $("#class").value === "";
  $("#guidance").disabled = off;
  $("#guidance-field").classList.toggle("disabled", off);
  $("#guidance-value").textContent = Number($("#guidance").value).toFixed(1);
}

// classChoice is the class and guidance the page asks for, or null.
function classChoice() {
  if ($("#class-controls").hidden || $("#class").value === "") return null;
  return { class: $("#class").value, guidance: $("#guidance").value };
}

function params(panel) {
  const q = new URLSearchParams();
  q.set("model", $("#model").value);
  q.set("n", $("#n").value);
  q.set("seed", $("#seed").value || "0");
  const sampler = $(".sampler", panel).value;
  q.set("sampler", sampler);
  q.set("steps", $(".steps", panel).value);
  q.set("spacing", $(".spacing", panel).value);
  if ($(".clip", panel).checked) q.set("clip", "true");
  const es = $(".epsscale", panel).value;
  if (es && Number(es) !== 1) q.set("eps_scale", es);
  if (sampler === "ddim") q.set("eta", $(".eta", panel).value || "0");
  if (sampler === "ddpm") q.set("variance", $(".variance", panel).value);
  const c = classChoice();
  if (c) {
    q.set("class", c.class);
    q.set("guidance", c.guidance);
  }
  return q;
}

function setupPanel(panel) {
  const syncSampler = () => { panel.dataset.sampler = $(".sampler", panel).value; };
  $(".sampler", panel).onchange = syncSampler;
  syncSampler();
  let controller = null;
  const state = (s, text) => {
    panel.dataset.state = s;
    const el = $(".state", panel);
    el.textContent = text || s;
    el.classList.toggle("error", s === "error");
  };
  state("idle");
  panel.dataset.frames = "0";

  panel.run = async () => {
    if (controller) controller.abort();
    const ctl = new AbortController();
    controller = ctl;
    const q = params(panel);
    panel.dataset.frames = "0";
    $(".bar", panel).style.width = "0";
    $(".step", panel).textContent = "";
    $(".dl-png", panel).hidden = true;
    $(".dl-npz", panel).hidden = true;
    $(".stop", panel).disabled = false;
    state("queued", "queued…");
    try {
      const r = await fetch("/v1/samples/stream?" + q, { signal: ctl.signal });
      if (!r.ok) {
        let msg = r.status + " " + r.statusText;
        try { const e = await r.json(); msg = e.error; } catch (_) {}
        if (r.status === 429) msg += ` (retry after ${r.headers.get("Retry-After")} s)`;
        state("error", msg);
        return;
      }
      await readEvents(r.body, (ev, data) => handle(panel, q, ev, data, state));
    } catch (e) {
      if (e.name === "AbortError") state("stopped");
      else state("error", String(e));
    } finally {
      if (controller === ctl) { controller = null; $(".stop", panel).disabled = true; }
    }
  };
  $(".run", panel).onclick = () => panel.run();
  $(".stop", panel).onclick = () => { if (controller) controller.abort(); };
}

function handle(panel, q, ev, data, state) {
  switch (ev) {
    case "queued":
      state("queued", `queued (${data.position} ahead) · ${data.sampler}`);
      break;
    case "start":
      state("running");
      break;
    case "step": {
      $(".xt", panel).src = "data:image/png;base64," + data.x_t;
      $(".x0", panel).src = "data:image/png;base64," + data.x0;
      $(".tlabel", panel).textContent = `t = ${data.t}`;
      $(".step", panel).textContent = `step ${data.index + 1} / ${data.total}`;
      $(".bar", panel).style.width = (100 * data.progress).toFixed(1) + "%";
      panel.dataset.frames = String(Number(panel.dataset.frames) + 1);
      panel.dataset.index = String(data.index + 1);
      panel.dataset.total = String(data.total);
      break;
    }
    case "done": {
      const url = "data:image/png;base64," + data.png;
      $(".xt", panel).src = url;
      $(".tlabel", panel).textContent = "final";
      $(".bar", panel).style.width = "100%";
      const a = $(".dl-png", panel);
      a.href = url;
      a.download = fileName(q, "png");
      a.hidden = false;
      const z = $(".dl-npz", panel);
      z.hidden = false;
      z.onclick = (e) => { e.preventDefault(); downloadNPZ(q); };
      const cls = data.class === undefined ? "" : ` · class ${className(q.get("model"), data.class)}, s = ${data.guidance}`;
      state("done", `done · ${data.sampler}${cls} · ${data.seconds.toFixed(2)} s`);
      break;
    }
    case "error":
      state("error", data.error);
      break;
  }
}

// downloadNPZ asks POST /v1/samples for the same run as uint8 images; same parameters, same images.
async function downloadNPZ(q) {
  const body = { format: "npz" };
  for (const [k, v] of q) {
    if (["n", "steps", "seed"].includes(k)) body[k] = Number(v);
    else if (k === "eta" || k === "eps_scale" || k === "guidance") body[k] = Number(v);
    else if (k === "clip") body[k] = v === "true";
    else body[k] = v;
  }
  const r = await fetch("/v1/samples", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) { alert((await r.json()).error); return; }
  const blob = await r.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = fileName(q, "npz");
  a.click();
  URL.revokeObjectURL(a.href);
}

// fileName names a download after its request; a class (an index or "all") and scale are part of it.
function fileName(q, ext) {
  const cls = q.has("class") ? `-class${q.get("class")}-s${q.get("guidance")}` : "";
  return `${q.get("model")}-${q.get("sampler")}-${q.get("steps")}-seed${q.get("seed")}${cls}.${ext}`;
}

// className is the name of class index c of a model ("all" stays "all").
function className(model, c) {
  const m = models[model];
  return (m && m.classes && m.classes[Number(c)]) || c;
}

// readEvents parses a Server-Sent Events body: blocks of "event:" and "data:" lines ended by a
// blank line.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let ev = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) ev = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(ev, JSON.parse(data));
    }
  }
}

init();
