// Browser test of the page's inpainting editor in headless Chromium, against a server whose first
// model is a small random 28x28 one (random weights are enough: the test checks what the page draws,
// sends and shows, and that the known pixels come back exactly, not the digits). It draws two strokes
// on the canvas with the mouse (pointer events), paints the bottom rows as the part to fill in with
// the mask brush, presses Complete and checks that the POST /v1/samples/stream request carried the
// canvas's image and mask, that the completions arrived step by step, and that every completion in
// the final grid keeps the drawn pixels outside the mask byte for byte; then the same with RePaint
// (whose steps are its network calls), "start from the last sample", and the refusal of a mask with
// nothing to fill in.
//
//   node e2e/inpaint.mjs http://127.0.0.1:8080
//
// Exit status 0 on success; on failure the reason is printed and a screenshot of the page is saved
// as ddpm-e2e-inpaint-fail.png in the temporary directory.
import { check, open } from "./session.mjs";

const [url = "http://127.0.0.1:8080", shot = ""] = process.argv.slice(2);
const session = await open("inpaint", { width: 1280, height: 1400 });
const { page, log } = session;
const posts = []; // bodies of every POST /v1/samples/stream
page.on("request", (r) => {
  if (new URL(r.url()).pathname === "/v1/samples/stream" && r.method() === "POST") posts.push(r.postDataJSON());
});

// drag moves the mouse from a to b (in model pixels of the canvas) with the button down.
async function drag(a, b, w, h) {
  const box = await page.locator("#canvas").boundingBox();
  const px = ([x, y]) => [box.x + (x / w) * box.width, box.y + (y / h) * box.height];
  await page.mouse.move(...px(a));
  await page.mouse.down();
  await page.mouse.move(...px(b), { steps: 12 });
  await page.mouse.up();
}

// complete presses Complete and waits for the run to end; it returns the request, the panel's
// state and the editor's image and mask as sent.
async function complete() {
  const before = posts.length;
  await page.click("#inpaint .run");
  await page.waitForSelector("#inpaint[data-state='done'], #inpaint[data-state='error']", { timeout: 120000 });
  const st = await page.$eval("#inpaint", (p) => ({ state: p.dataset.state, frames: Number(p.dataset.frames), total: Number(p.dataset.total), text: p.querySelector(".state").textContent }));
  check(st.state === "done", "inpaint panel: " + st.text);
  check(posts.length === before + 1, `${posts.length - before} POST stream requests for one run`);
  return { req: posts[posts.length - 1], ...st };
}

// completions reads the n images of the panel's final grid (cols columns, 2 pixels apart) as bytes.
async function completions(n, cols, w, h) {
  return page.evaluate(async ([n, cols, w, h]) => {
    const im = new Image();
    im.src = document.querySelector("#inpaint .dl-png").href;
    await im.decode();
    const cv = document.createElement("canvas");
    cv.width = im.naturalWidth;
    cv.height = im.naturalHeight;
    const g = cv.getContext("2d");
    g.drawImage(im, 0, 0);
    const out = [];
    for (let k = 0; k < n; k++) {
      const d = g.getImageData(2 + (k % cols) * (w + 2), 2 + Math.floor(k / cols) * (h + 2), w, h).data;
      out.push(Array.from({ length: w * h }, (_, i) => d[4 * i]));
    }
    return out;
  }, [n, cols, w, h]);
}

// checkKnown fails unless every completion equals the sent image wherever the sent mask keeps it.
function checkKnown(what, imgs, req) {
  const { image, mask } = req.inpaint;
  let kept = 0;
  for (const [k, px] of imgs.entries()) {
    for (let i = 0; i < mask.length; i++) {
      if (mask[i] !== 1) continue;
      kept++;
      check(px[i] === image[i], `${what}: completion ${k}, pixel ${i} is ${px[i]}, the drawn value is ${image[i]}`);
    }
  }
  return kept;
}

await session.run(async () => {
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
  const m = await page.evaluate(async () => (await (await fetch("/v1/models")).json()).models[0]);
  const w = m.width, h = m.height;
  check(m.channels === 1, "this test draws on a one-channel model, got " + m.channels);
  const cv = await page.$eval("#canvas", (c) => ({ w: c.width, h: c.height, cw: c.getBoundingClientRect().width }));
  check(cv.w === w && cv.h === h && cv.cw >= 4 * w, `canvas ${JSON.stringify(cv)} for a ${w}x${h} model`);
  log(`page loaded; canvas ${w}x${h} shown ${cv.cw} px wide`);

  await page.fill("#n", "4");
  await page.fill("#seed", "5");
  await page.fill("#inpaint .steps", "8");
  // Nothing masked yet: the page says so instead of sending a request the server would refuse.
  await page.click("#inpaint .run");
  check(await page.$eval("#inpaint", (p) => p.dataset.state) === "error" && posts.length === 0,
    "Complete with nothing masked did not stop at the page");

  // Two strokes with the pen: a vertical bar and a diagonal.
  await drag([14, 4], [14, 24], w, h);
  await drag([8, 8], [20, 20], w, h);
  const ink = await page.evaluate(() => ({ bar: editor.img[12 * editor.w + 14], diag: editor.img[14 * editor.w + 14], corner: editor.img[0], total: editor.img.reduce((a, v) => a + (v > 0), 0) }));
  check(ink.bar > 200 && ink.diag > 200 && ink.corner === 0 && ink.total > 30, "strokes did not reach the image: " + JSON.stringify(ink));
  // The mask brush over the bottom rows: those pixels are to be filled in.
  await page.check("input[name=tool][value=mask]");
  await page.fill("#brush", "4");
  for (const y of [18, 20.5, 23, 25.5]) await drag([0, y], [w, y], w, h);
  const mk = await page.evaluate(() => ({ top: editor.mask.slice(0, 14 * editor.w).every((v) => v === 1), bottom: editor.mask.slice(19 * editor.w, 25 * editor.w).every((v) => v === 0), fill: Number(document.querySelector("#inpaint").dataset.fill), info: document.querySelector("#mask-info").textContent }));
  check(mk.top && mk.bottom && mk.fill > 6 * w, "mask strokes: " + JSON.stringify(mk));
  log(`drew ${ink.total} inked pixels, masked ${mk.fill} (${mk.info})`);
  const drawn = await page.evaluate(() => ({ image: Array.from(editor.img), mask: Array.from(editor.mask) }));

  // Replacement with DDIM, 8 steps: every step shown, the request carried the canvas.
  let r = await complete();
  check(JSON.stringify(r.req.inpaint) === JSON.stringify(drawn), "the request's image or mask differs from the canvas");
  check(r.req.sampler === "ddim" && r.req.steps === 8 && r.req.n === 4 && !("repaint" in r.req.inpaint), "request " + JSON.stringify({ ...r.req, inpaint: undefined }));
  check(r.frames === 8 && r.total === 8, `replacement showed ${r.frames} frames of ${r.total}, want 8 of 8`);
  check(r.text.includes("with replacement") && r.text.includes(`${mk.fill} values filled in`), "done state " + r.text);
  let imgs = await completions(4, 2, w, h);
  const kept = checkKnown("replacement", imgs, r.req);
  const differ = imgs.some((px) => px.some((v, i) => drawn.mask[i] === 0 && v !== imgs[0][i]));
  check(differ, "the four completions are identical in the filled part");
  log(`replacement: ${r.frames} frames, ${kept} kept pixels of 4 completions equal the drawing; ${r.text}`);
  if (shot) await page.screenshot({ path: shot, fullPage: true });

  // RePaint: 10 steps, jumps 2, jump length 3: 10 + 1*3*3 = 19 network calls, each a frame.
  await page.selectOption("#inpaint .method", "repaint");
  check(!(await page.isVisible("#inpaint .spacing")) && (await page.isVisible("#inpaint .jumps")), "RePaint settings not shown");
  await page.fill("#inpaint .steps", "10");
  await page.fill("#inpaint .jumps", "2");
  await page.fill("#inpaint .jump-length", "3");
  check((await page.textContent("#inpaint .calls")).startsWith("19 network calls"), "calls shown: " + (await page.textContent("#inpaint .calls")));
  r = await complete();
  check(r.req.inpaint.repaint === true && r.req.inpaint.jumps === 2 && r.req.inpaint.jump_length === 3 && !("sampler" in r.req) && !("spacing" in r.req),
    "RePaint request " + JSON.stringify({ ...r.req, inpaint: { ...r.req.inpaint, image: undefined, mask: undefined } }));
  check(r.frames === 19 && r.total === 19, `RePaint showed ${r.frames} frames of ${r.total}, want 19 of 19`);
  imgs = await completions(4, 2, w, h);
  checkKnown("RePaint", imgs, r.req);
  log(`RePaint: ${r.frames} frames; kept pixels equal the drawing; ${r.text}`);

  // Start from the last sample: the editor takes the first completion, the mask stays.
  await page.click("#from-sample");
  await page.waitForFunction((first) => editor.img.every((v, i) => v === first[i]), imgs[0], { timeout: 5000 });
  check(await page.evaluate((mask) => editor.mask.every((v, i) => v === mask[i]), drawn.mask), "start from a sample changed the mask");
  // Invert, then clear the mask: nothing to fill in again.
  await page.click("#invert-mask");
  check(await page.evaluate((mask) => editor.mask.every((v, i) => v === 1 - mask[i]), drawn.mask), "invert did not invert the mask");
  await page.click("#clear-mask");
  await page.click("#inpaint .run");
  check(await page.$eval("#inpaint", (p) => p.dataset.state) === "error", "Complete after clearing the mask was not refused");
  log("start from a sample, invert and clear work");
});
