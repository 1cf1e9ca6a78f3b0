// Browser test of the page with a colour, class-conditional model of another size than MNIST's: a
// 3x32x32 model trained for a couple of steps by `ddpm train --cond class` on a folder of colour
// PNGs whose class folders are named like the emoji categories ("Food & Drink", "Smileys &
// Emotion") plus one, `Flags <i>&amp; "x"`, that HTML would misread if the page did not escape it. The
// trained weights are all but random; the test checks what the page shows and sends, not the images.
//
//   node e2e/colour.mjs --data DIR           # write the training folder (DIR/<class>/*.png) and exit
//   node e2e/colour.mjs http://127.0.0.1:8080 [screenshot.png]
//
// Against the server it checks: /v1/models reports 3x32x32 and the three names; the class picker
// lists them as text; picking "Food & Drink" by its name sends its index; panel B's images are
// colour (red != green somewhere) grids of 32x32 images at a whole-number display scale with their
// own aspect ratio, equal to POST /v1/samples's; class "all" is one row per class; the inpainting
// editor is 32x32, starts white, draws in the picked pen colour, and a completion of a colour
// drawing with the bottom masked keeps every kept value of all three channels exactly; "start
// from the last sample" loads the completion's colours.
//
// Exit status 0 on success; on failure the reason is printed and a screenshot of the page is saved
// as ddpm-e2e-colour-fail.png in the temporary directory.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";

export const classes = ["Smileys & Emotion", "Food & Drink", 'Flags <i>&amp; "x"'];

// pngRGB encodes w x h interleaved RGB bytes as a PNG.
function pngRGB(w, h, rgb) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    raw[y * (1 + 3 * w)] = 0; // filter: none
    rgb.copy(raw, y * (1 + 3 * w) + 1, y * 3 * w, (y + 1) * 3 * w);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

// writeData writes 4 PNGs per class: a disc of the class's colour on white, moved about.
function writeData(dir) {
  const colours = [[250, 200, 30], [200, 60, 30], [40, 90, 200]];
  classes.forEach((name, k) => {
    mkdirSync(join(dir, name), { recursive: true });
    for (let i = 0; i < 4; i++) {
      const s = 32, rgb = Buffer.alloc(s * s * 3, 255);
      const cx = 12 + 3 * i, cy = 20 - 2 * i, r = 7 + k;
      for (let y = 0; y < s; y++) {
        for (let x = 0; x < s; x++) {
          if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) rgb.set(colours[k], 3 * (y * s + x));
        }
      }
      writeFileSync(join(dir, name, `${i}.png`), pngRGB(s, s, rgb));
    }
  });
}

if (process.argv[2] === "--data") {
  writeData(process.argv[3]);
  process.exit(0);
}

const { check, open } = await import("./session.mjs");
const [url = "http://127.0.0.1:8080", shot = ""] = process.argv.slice(2);
const session = await open("colour", { width: 1280, height: 1400 });
const { page, log } = session;
const streams = []; // GET stream query parameters
const posts = []; // POST stream bodies
page.on("request", (r) => {
  const u = new URL(r.url());
  if (u.pathname !== "/v1/samples/stream") return;
  if (r.method() === "POST") posts.push(r.postDataJSON());
  else streams.push(Object.fromEntries(u.searchParams));
});

// run presses the panel's run button and waits for the run to end.
async function run(panel) {
  await page.click(`${panel} .run`);
  await page.waitForSelector(`${panel}[data-state='done'], ${panel}[data-state='error']`, { timeout: 60000 });
  const st = await page.$eval(panel, (p) => ({ state: p.dataset.state, text: p.querySelector(".state").textContent }));
  check(st.state === "done", `${panel}: ${st.text}`);
  return st.text;
}

// pixels decodes a data: URL PNG in the page into RGBA bytes.
async function pixels(src) {
  return page.evaluate(async (src) => {
    const im = new Image();
    im.src = src;
    await im.decode();
    const cv = document.createElement("canvas");
    cv.width = im.naturalWidth;
    cv.height = im.naturalHeight;
    const g = cv.getContext("2d");
    g.drawImage(im, 0, 0);
    return { w: cv.width, h: cv.height, data: Array.from(g.getImageData(0, 0, cv.width, cv.height).data) };
  }, src);
}

// shown is how the panel's final image is laid out: its natural and displayed sizes.
async function shown(panel) {
  return page.$eval(`${panel} .xt`, (i) => {
    const r = i.getBoundingClientRect();
    return { nw: i.naturalWidth, nh: i.naturalHeight, w: r.width - 2, h: r.height - 2, src: i.src }; // 1px border
  });
}

function colourful(px) {
  let n = 0;
  for (let i = 0; i < px.data.length; i += 4) if (px.data[i] !== px.data[i + 1]) n++;
  return n;
}

// drag moves the mouse from a to b (in model pixels of the canvas) with the button down.
async function drag(a, b, w, h) {
  const box = await page.locator("#canvas").boundingBox();
  const px = ([x, y]) => [box.x + (x / w) * box.width, box.y + (y / h) * box.height];
  await page.mouse.move(...px(a));
  await page.mouse.down();
  await page.mouse.move(...px(b), { steps: 10 });
  await page.mouse.up();
}

await session.run(async () => {
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
  const m = await page.evaluate(async () => (await (await fetch("/v1/models")).json()).models[0]);
  check(m.channels === 3 && m.height === 32 && m.width === 32, `model ${m.channels}x${m.height}x${m.width}, want 3x32x32`);
  const want = [...classes].sort(); // class folders are numbered in name order
  check(JSON.stringify(m.classes) === JSON.stringify(want), "classes " + JSON.stringify(m.classes));
  const modelText = await page.textContent("#model option");
  check(modelText.includes("3×32×32"), "model option " + modelText);
  log(`page loaded: ${modelText}; classes ${JSON.stringify(m.classes)}`);

  // The picker lists the names as text (no markup made of '<i>', no "&amp;").
  check(await page.isVisible("#class"), "class picker hidden for a conditional model");
  const opts = await page.$$eval("#class option", (os) => os.map((o) => [o.value, o.textContent, o.innerHTML]));
  check(opts.length === 5 && opts.slice(2).every(([v, t], i) => v === String(i) && t === `${i}: ${want[i]}`), "class options " + JSON.stringify(opts));
  check(await page.$$eval("#class i", (is) => is.length) === 0, "a class name became markup");
  // Pick "Food & Drink" by its name, as a user reads it.
  const food = opts.find(([, t]) => t.endsWith(": Food & Drink"));
  await page.selectOption("#class", { label: food[1] });
  const k = want.indexOf("Food & Drink");
  check(await page.inputValue("#class") === String(k), "picking Food & Drink chose " + await page.inputValue("#class"));

  // Panel B: DDIM-6, 4 images of class Food & Drink.
  await page.fill("#n", "4");
  await page.fill("#seed", "3");
  await page.selectOption("#panel-b .sampler", "ddim");
  await page.fill("#panel-b .steps", "6");
  let text = await run("#panel-b");
  const q = streams[streams.length - 1];
  check(q.class === String(k) && q.model === m.name, "stream request " + JSON.stringify(q));
  check(text.includes("class Food & Drink"), "done state does not name the class: " + text);
  let img = await shown("#panel-b");
  let px = await pixels(img.src);
  check(img.nw === 2 * 34 + 2 && img.nh === 2 * 34 + 2, `grid ${img.nw}x${img.nh}, want 70x70 (2x2 images of 32x32)`);
  check(colourful(px) > 0, "the final grid is grey: red = green everywhere");
  check(img.w % img.nw === 0 && img.w / img.nw >= 2 && Math.abs(img.h / img.w - img.nh / img.nw) < 0.02, "displayed " + JSON.stringify({ ...img, src: undefined }));
  const same = await page.evaluate(async ([model, k, src]) => {
    const body = { model, class: k, guidance: Number(document.querySelector("#guidance").value), sampler: "ddim", steps: 6, eta: 0, n: 4, seed: 3, clip: true, spacing: "linspace" };
    const r = await fetch("/v1/samples", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...body, class: "food & drink" }) });
    const buf = new Uint8Array(await r.arrayBuffer());
    let s = "";
    for (const x of buf) s += String.fromCharCode(x);
    return { status: r.status, same: src === "data:image/png;base64," + btoa(s), cls: r.headers.get("X-Ddpm-Class") };
  }, [m.name, k, img.src]);
  check(same.status === 200 && same.same && same.cls === "food & drink", "the page's grid differs from POST /v1/samples with class \"food & drink\": " + JSON.stringify(same));
  log(`class Food & Drink: ${img.nw}x${img.nh} grid shown at ${img.w}x${img.h}, ${colourful(px)} coloured pixels, equal to POST by name; ${text}`);

  // "all": one row per class, wider than tall, shown at its own aspect ratio.
  await page.selectOption("#class", "all");
  text = await run("#panel-b");
  img = await shown("#panel-b");
  check(img.nw === m.per_class * 34 + 2 && img.nh === 3 * 34 + 2, `class all grid ${img.nw}x${img.nh}`);
  check(Math.abs(img.h / img.w - img.nh / img.nw) < 0.02, `class all grid ${img.nw}x${img.nh} shown ${img.w}x${img.h}: stretched`);
  log(`class all: ${img.nw}x${img.nh} shown at ${img.w.toFixed(0)}x${img.h.toFixed(0)}`);
  await page.selectOption("#class", String(k));
  await page.fill("#n", "4");

  // The editor: 32x32, white, a pen colour; draw a red bar and mask the bottom rows.
  const cv = await page.$eval("#canvas", (c) => ({ w: c.width, h: c.height, cw: c.getBoundingClientRect().width }));
  check(cv.w === 32 && cv.h === 32 && cv.cw >= 4 * 32, "canvas " + JSON.stringify(cv));
  check(await page.isVisible("#pen-colour"), "no pen colour for a colour model");
  check(await page.evaluate(() => editor.c === 3 && editor.img.length === 3072 && editor.img.every((v) => v === 255)), "the colour editor does not start as a white 3x32x32 image");
  await page.fill("#pen-colour", "#2040e0");
  await page.fill("#brush", "3");
  await drag([6, 6], [26, 20], 32, 32);
  const ink = await page.evaluate(() => {
    const i = 13 * 32 + 16, hw = 32 * 32; // on the stroke
    return [editor.img[i], editor.img[hw + i], editor.img[2 * hw + i], editor.img[0]];
  });
  check(ink[0] === 0x20 && ink[1] === 0x40 && ink[2] === 0xe0 && ink[3] === 255, "pen stroke values " + ink);
  const canvasPx = await page.evaluate(() => Array.from(document.querySelector("#canvas").getContext("2d").getImageData(16, 13, 1, 1).data));
  check(canvasPx[0] === 0x20 && canvasPx[1] === 0x40 && canvasPx[2] === 0xe0, "canvas shows " + canvasPx);
  await page.check("input[name=tool][value=mask]");
  await page.fill("#brush", "4");
  for (const y of [22, 24.5, 27, 29.5, 32]) await drag([0, y], [32, y], 32, 32);
  const fill = Number(await page.$eval("#inpaint", (p) => p.dataset.fill));
  check(fill >= 8 * 32 && fill < 14 * 32, `${fill} pixels masked`);
  const drawn = await page.evaluate(() => ({ image: Array.from(editor.img), mask: Array.from(editor.mask) }));

  await page.fill("#inpaint .steps", "6");
  text = await run("#inpaint");
  const req = posts[posts.length - 1];
  check(JSON.stringify(req.inpaint) === JSON.stringify(drawn) && req.inpaint.image.length === 3072 && req.inpaint.mask.length === 1024,
    "the request's image or mask differs from the canvas");
  check(req.class === String(k) && text.includes(`${3 * fill} values filled in`), `request class ${req.class}; ${text}`);
  // Every completion keeps the kept values of all three channels exactly.
  const out = await pixels(await page.$eval("#inpaint .dl-png", (a) => a.href));
  let kept = 0;
  for (let n = 0; n < 4; n++) {
    const x0 = 2 + (n % 2) * 34, y0 = 2 + Math.floor(n / 2) * 34;
    for (let i = 0; i < 1024; i++) {
      if (!drawn.mask[i]) continue;
      const o = 4 * ((y0 + Math.floor(i / 32)) * out.w + x0 + (i % 32));
      for (let ch = 0; ch < 3; ch++) {
        check(out.data[o + ch] === drawn.image[ch * 1024 + i], `completion ${n}, channel ${ch}, pixel ${i}: ${out.data[o + ch]}, drawn ${drawn.image[ch * 1024 + i]}`);
        kept++;
      }
    }
  }
  log(`inpainting: ${fill} pixels masked, ${kept} kept values of 4 completions equal the drawing in every channel; ${text}`);

  // Start from the last sample: the first completion's colours, in all three channels.
  check(!(await page.isDisabled("#from-sample")), "start from the last sample disabled after a run of this model");
  const first = [];
  for (let ch = 0; ch < 3; ch++) for (let i = 0; i < 1024; i++) first.push(out.data[4 * ((2 + Math.floor(i / 32)) * out.w + 2 + (i % 32)) + ch]);
  await page.click("#from-sample");
  // The editor loads the sample asynchronously (the PNG decodes first), and a kept pixel reads the
  // same before and after: wait for the whole image, then count what still differs.
  await page.waitForFunction((w) => w.every((v, i) => editor.img[i] === v), first, { timeout: 5000 }).catch(() => {});
  const loaded = await page.evaluate(() => Array.from(editor.img));
  const diff = first.filter((v, i) => loaded[i] !== v).length;
  check(diff === 0, `start from the last sample: ${diff} values differ from the first completion`);
  log("start from the last sample loaded the first completion in colour");
  if (shot) await page.screenshot({ path: shot, fullPage: true });
});
