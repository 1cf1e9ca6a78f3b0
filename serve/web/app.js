// The page talks to the same API as any other client: GET /v1/models once, then one
// GET /v1/samples/stream per run, or POST /v1/samples/stream for an inpainting (its image and mask
// travel as JSON, not in a URL). It reads the stream with fetch rather than EventSource so that it
// sees the status and JSON error of a refused request (400, 429), can POST, and can stop a run by
// aborting the fetch, which makes the server cancel the sampler.
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
      // A distilled student (ddpm distill) is named by what it is for: a few steps.
      o.textContent = m.distilled_steps
        ? `${m.name} · instant (${m.distilled_steps} step${m.distilled_steps === 1 ? "" : "s"})`
        : `${m.name} (${m.channels}×${m.height}×${m.width}, T=${m.timesteps}, ${m.prediction})`;
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
  for (const img of document.querySelectorAll("figure img")) img.addEventListener("load", () => fitImage(img));
  // Steps are bounded by the chosen model's T and the server's limit.
  const syncSteps = () => {
    const o = $("#model").selectedOptions[0];
    const most = Math.min(Number(o ? o.dataset.t : 1000), limits.max_steps || 1000);
    for (const s of document.querySelectorAll(".steps")) {
      s.max = most;
      if (Number(s.value) > most) s.value = most;
    }
  };
  $("#model").onchange = () => { syncDistilled(); syncSteps(); syncClasses(); resizeEditor(); syncFromSample(); };
  $("#class").onchange = () => {
    // "all" draws per_class images of each class in turn, one grid row per class: ask for them all.
    const m = models[$("#model").value];
    if ($("#class").value === "all" && m) $("#n").value = Math.min(limits.max_n, m.num_classes * m.per_class);
    syncGuidance();
  };
  $("#guidance").oninput = syncGuidance;
  if (ok) { syncDistilled(); syncSteps(); syncClasses(); }
  setupEditor();
  document.body.dataset.ready = ok ? "1" : "error";
  $("#reseed").onclick = () => { $("#seed").value = Math.floor(Math.random() * 1e9); };
  $("#compare").onclick = () => { for (const p of document.querySelectorAll("#panel-a, #panel-b")) p.run(); };
}

// syncDistilled sets panels A and B to what a distilled model was trained for, DDIM (eta 0) over
// its own grid of distilled_steps timesteps: the panels' usual 100 or 50 steps of a spacing are
// runs the student never learned. Its grid is no spacing, so the spacing picker offers it (sent as
// no spacing at all) for such a model only. The user can still change all of it (the server then
// warns); the panels' previous settings come back with an ordinary model.
function syncDistilled() {
  const m = models[$("#model").value];
  const n = m ? m.distilled_steps || 0 : 0;
  for (const panel of document.querySelectorAll("#panel-a, #panel-b")) {
    const spacing = $(".spacing", panel);
    const grid = spacing.querySelector("option[value='']");
    if (n > 0) {
      if (!grid) {
        panel.dataset.before = JSON.stringify({ sampler: $(".sampler", panel).value, steps: $(".steps", panel).value, eta: $(".eta", panel).value, spacing: spacing.value });
        spacing.prepend(new Option("distilled grid", ""));
      }
      $(".sampler", panel).value = "ddim";
      $(".steps", panel).value = n;
      $(".eta", panel).value = 0;
      spacing.value = "";
    } else if (grid) {
      grid.remove();
      const b = JSON.parse(panel.dataset.before);
      $(".sampler", panel).value = b.sampler;
      $(".steps", panel).value = b.steps;
      $(".eta", panel).value = b.eta;
      spacing.value = b.spacing;
    }
    $(".sampler", panel).dispatchEvent(new Event("change"));
  }
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

// request is the JSON request a panel's settings make, typed as POST /v1/samples takes it; a
// plain run sends the same names as query parameters. The inpainting panel adds the canvas's image
// and mask, and RePaint (its own DDPM) leaves out the sampler, spacing and eta.
function request(panel) {
  const body = { model: $("#model").value, n: Number($("#n").value), seed: Number($("#seed").value || "0") };
  const repaint = panel.dataset.sampler === "repaint";
  const sampler = $(".sampler", panel).value;
  if (!repaint) body.sampler = sampler;
  body.steps = Number($(".steps", panel).value);
  if (!repaint && $(".spacing", panel).value) body.spacing = $(".spacing", panel).value; // "": a distilled model's grid
  if ($(".clip", panel).checked) body.clip = true;
  const es = $(".epsscale", panel).value;
  if (es && Number(es) !== 1) body.eps_scale = Number(es);
  if (!repaint && sampler === "ddim") body.eta = Number($(".eta", panel).value || "0");
  if (repaint || sampler === "ddpm") body.variance = $(".variance", panel).value;
  const c = classChoice();
  if (c) {
    body.class = c.class;
    body.guidance = Number(c.guidance);
  }
  if (panel.id === "inpaint") {
    body.inpaint = { image: Array.from(editor.img), mask: Array.from(editor.mask) };
    if (repaint) {
      body.inpaint.repaint = true;
      body.inpaint.jumps = Number($(".jumps", panel).value);
      body.inpaint.jump_length = Number($(".jump-length", panel).value);
    }
  }
  return body;
}

// query is a request without inpainting as GET /v1/samples/stream's parameters.
function query(body) {
  return new URLSearchParams(Object.entries(body).map(([k, v]) => [k, String(v)]));
}

function setupPanel(panel) {
  // data-sampler picks the settings shown: the sampler's, or RePaint's in the inpainting panel.
  const method = $(".method", panel);
  const syncSampler = () => {
    panel.dataset.sampler = method && method.value === "repaint" ? "repaint" : $(".sampler", panel).value;
    if (method) syncCalls(panel);
  };
  $(".sampler", panel).onchange = syncSampler;
  if (method) method.onchange = syncSampler;
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
    const q = request(panel);
    if (q.inpaint && !q.inpaint.mask.includes(0)) {
      state("error", "nothing to fill in: paint the part to complete with the mask brush first");
      return;
    }
    panel.dataset.frames = "0";
    $(".bar", panel).style.width = "0";
    $(".step", panel).textContent = "";
    $(".dl-png", panel).hidden = true;
    $(".dl-npz", panel).hidden = true;
    $(".stop", panel).disabled = false;
    state("queued", "queued…");
    try {
      const r = q.inpaint
        ? await fetch("/v1/samples/stream", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(q), signal: ctl.signal })
        : await fetch("/v1/samples/stream?" + query(q), { signal: ctl.signal });
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
      const cls = data.class === undefined ? "" : ` · class ${className(q.model, data.class)}, s = ${data.guidance}`;
      const fill = data.fill ? ` · ${data.fill} values filled in` : "";
      const warn = data.warning ? ` · ${data.warning}` : "";
      state("done", `done · ${data.sampler}${cls}${fill} · ${data.seconds.toFixed(2)} s${warn}`);
      lastSample = { url, model: q.model };
      syncFromSample();
      break;
    }
    case "error":
      state("error", data.error);
      break;
  }
}

// downloadNPZ asks POST /v1/samples for the same run as uint8 images; same request, same images.
async function downloadNPZ(q) {
  const r = await fetch("/v1/samples", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...q, format: "npz" }) });
  if (!r.ok) { alert((await r.json()).error); return; }
  const blob = await r.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = fileName(q, "npz");
  a.click();
  URL.revokeObjectURL(a.href);
}

// fileName names a download after its request; a class (an index or "all") and scale are part of
// it, and an inpainting says so.
function fileName(q, ext) {
  const cls = q.class !== undefined ? `-class${q.class}-s${q.guidance}` : "";
  const ip = q.inpaint ? "-inpaint" : "";
  return `${q.model}-${q.sampler || "repaint"}-${q.steps}${ip}-seed${q.seed}${cls}.${ext}`;
}

// className is the name of class index c of a model ("all" stays "all").
function className(model, c) {
  const m = models[model];
  return (m && m.classes && m.classes[Number(c)]) || c;
}

// fitImage shows a grid at the largest whole multiple of its size that fits displayWidth (so every
// image pixel is the same number of screen pixels, whatever the model's size), at its own aspect
// ratio (a row per class is wider than tall); a grid wider than that is scaled down smoothly. CSS
// max-width keeps it inside its panel either way.
const displayWidth = 300;
function fitImage(img) {
  const w = img.naturalWidth;
  if (!w) return;
  const k = Math.floor(displayWidth / w);
  img.style.width = (k >= 1 ? k * w : displayWidth) + "px";
  img.classList.toggle("smooth", k < 1);
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

// The inpainting editor: the image to complete (C*H*W bytes, CHW, at the model's size) and the mask
// (H*W, 1 = keep, 0 = fill in), drawn on a canvas of the model's size shown scaled up, the pixels to
// fill in tinted. Pointer events serve mouse, pen and touch alike. A grey model's image starts black
// and the pen draws white (as MNIST digits are); a colour model's starts white (the emoji are
// composited over white) and the pen draws the colour picked.
const editor = { c: 1, h: 28, w: 28, img: new Uint8Array(784), mask: new Uint8Array(784).fill(1) };
let lastSample = null; // the last run's final grid: { url, model }

// background is the value a cleared or erased pixel takes in every channel.
const background = () => (editor.c === 3 ? 255 : 0);

function setupEditor() {
  const cv = $("#canvas");
  let last = null; // the previous pointer position of a stroke, in model pixels
  const at = (e) => {
    const r = cv.getBoundingClientRect();
    return [(e.clientX - r.left) / r.width * editor.w, (e.clientY - r.top) / r.height * editor.h];
  };
  cv.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    cv.setPointerCapture(e.pointerId);
    last = at(e);
    stroke(last, last);
    e.preventDefault();
  });
  cv.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = at(e);
    stroke(last, p);
    last = p;
  });
  const end = () => { last = null; };
  cv.addEventListener("pointerup", end);
  cv.addEventListener("pointercancel", end);
  $("#clear-image").onclick = () => { editor.img.fill(background()); drawEditor(); };
  $("#clear-mask").onclick = () => { editor.mask.fill(1); drawEditor(); };
  $("#invert-mask").onclick = () => { editor.mask.forEach((v, i) => { editor.mask[i] = 1 - v; }); drawEditor(); };
  $("#from-sample").onclick = fromSample;
  for (const el of document.querySelectorAll("#inpaint .steps, #inpaint .jumps, #inpaint .jump-length")) el.oninput = () => syncCalls($("#inpaint"));
  resizeEditor();
}

// resizeEditor fits the editor to the chosen model, starting over when the size changes.
function resizeEditor() {
  const m = models[$("#model").value];
  if (!m) return;
  if (m.channels !== editor.c || m.height !== editor.h || m.width !== editor.w) {
    Object.assign(editor, { c: m.channels, h: m.height, w: m.width,
      img: new Uint8Array(m.channels * m.height * m.width), mask: new Uint8Array(m.height * m.width).fill(1) });
    editor.img.fill(background());
  }
  $("#pen-colour-field").hidden = editor.c !== 3;
  const cv = $("#canvas");
  cv.width = editor.w;
  cv.height = editor.h;
  const scale = Math.max(1, Math.floor(256 / Math.max(editor.w, editor.h)));
  cv.style.width = editor.w * scale + "px";
  cv.style.height = editor.h * scale + "px";
  drawEditor();
}

// penColour is the pen's colour as [r, g, b] bytes (colour models).
function penColour() {
  const v = $("#pen-colour").value; // "#rrggbb"
  return [1, 3, 5].map((i) => parseInt(v.slice(i, i + 2), 16));
}

// stroke paints the brush along the segment a-b: pen and eraser change the image (soft-edged, as
// digits are), mask and unmask mark pixels to fill in or keep. On a grey model the pen raises pixels
// towards white and the eraser lowers them towards black; on a colour model the pen blends them
// towards its colour and the eraser towards the white background.
function stroke(a, b) {
  const tool = document.querySelector("input[name=tool]:checked").value;
  const radius = 0.75 * Number($("#brush").value);
  const { c, h, w, img, mask } = editor;
  const colour = c === 3 ? (tool === "pen" ? penColour() : [255, 255, 255]) : null;
  const steps = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) * 4));
  for (let k = 0; k <= steps; k++) {
    const x = a[0] + (b[0] - a[0]) * k / steps, y = a[1] + (b[1] - a[1]) * k / steps;
    for (let py = Math.max(0, Math.floor(y - radius - 1)); py < Math.min(h, Math.ceil(y + radius + 1)); py++) {
      for (let px = Math.max(0, Math.floor(x - radius - 1)); px < Math.min(w, Math.ceil(x + radius + 1)); px++) {
        const d = Math.hypot(px + 0.5 - x, py + 0.5 - y);
        const i = py * w + px;
        if (tool === "mask" || tool === "unmask") {
          if (d <= radius) mask[i] = tool === "mask" ? 0 : 1;
          continue;
        }
        const a = Math.min(1, Math.max(0, radius + 0.5 - d)), ink = Math.round(255 * a);
        for (let ch = 0; ch < c; ch++) {
          const j = ch * h * w + i;
          if (colour) img[j] = Math.round(img[j] + (colour[ch] - img[j]) * a);
          else img[j] = tool === "pen" ? Math.max(img[j], ink) : Math.min(img[j], 255 - ink);
        }
      }
    }
  }
  drawEditor();
}

// drawEditor shows the image with the pixels to fill in tinted orange in a checkerboard of two
// strengths (so that the tint stands out from orange in a colour image), and counts them.
function drawEditor() {
  const { c, h, w, img, mask } = editor;
  const cv = $("#canvas");
  const ctx = cv.getContext("2d");
  const out = ctx.createImageData(w, h);
  const tint = [255, 120, 0];
  let fill = 0;
  for (let i = 0; i < h * w; i++) {
    const alpha = ((i % w) + Math.floor(i / w)) % 2 ? 0.45 : 0.7;
    for (let ch = 0; ch < 3; ch++) {
      const v = img[(c === 3 ? ch : 0) * h * w + i];
      out.data[4 * i + ch] = mask[i] ? v : Math.round((1 - alpha) * v + alpha * tint[ch]);
    }
    out.data[4 * i + 3] = 255;
    if (!mask[i]) fill++;
  }
  ctx.putImageData(out, 0, 0);
  $("#mask-info").textContent = fill === 0
    ? "nothing to fill in yet: paint it with the mask brush"
    : `${fill} of ${h * w} pixels to fill in`;
  $("#inpaint").dataset.fill = String(fill);
}

// syncFromSample offers "start from the last sample" only when the last finished run was of the
// model chosen now: another model's grid has another size or number of channels.
function syncFromSample() {
  const ok = lastSample !== null && lastSample.model === $("#model").value;
  $("#from-sample").disabled = !ok;
  $("#from-sample").title = ok ? "the first image of the last finished run"
    : lastSample ? `the last finished run was of model ${lastSample.model}` : "no finished run yet";
}

// fromSample loads the first image of the last run's grid into the editor (imageio.GridPad = 2
// pixels of border), keeping the mask: the grey value, or red, green and blue for a colour model.
function fromSample() {
  if (!lastSample || lastSample.model !== $("#model").value) return;
  const im = new Image();
  im.onload = () => {
    const { c, h, w, img } = editor;
    const off = document.createElement("canvas");
    off.width = im.naturalWidth;
    off.height = im.naturalHeight;
    const ctx = off.getContext("2d");
    ctx.drawImage(im, 0, 0);
    const px = ctx.getImageData(2, 2, w, h).data;
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < h * w; i++) img[ch * h * w + i] = px[4 * i + (c === 3 ? ch : 0)];
    }
    drawEditor();
  };
  im.src = lastSample.url;
}

// syncCalls shows what a RePaint run costs: one network call per down step (diffusion.RePaint),
// steps + (r-1) j ceil((steps-j)/j), which the server bounds by its max_steps.
function syncCalls(panel) {
  const steps = Number($(".steps", panel).value), r = Number($(".jumps", panel).value), j = Number($(".jump-length", panel).value);
  const calls = steps + (steps > j ? (r - 1) * j * Math.floor((steps - 1) / j) : 0);
  const most = limits.max_steps || 1000;
  const el = $(".calls", panel);
  el.textContent = `${calls} network calls` + (calls > most ? ` (above the server's ${most})` : "");
  el.classList.toggle("error", calls > most);
}

init();
