// Browser test of the page's class controls in headless Chromium, against a server with an
// unconditional model first ("plain") and a class-conditional one ("cond", classes zero, one, two;
// random weights are enough: the test checks the controls and what the page asks for, not the
// digits). With "plain" selected the class picker and guidance slider are hidden; with "cond" the
// picker lists none, all and the class names, the slider is disabled until a class is picked, a run
// sends the class and the slider's value, and its image is the one POST /v1/samples returns for
// the same class and scale; "all" draws one grid row per class; the NPZ download carries the class.
//
//   node e2e/classes.mjs http://127.0.0.1:8080
//
// Exit status 0 on success; on failure the reason is printed and a screenshot of the page is saved
// as ddpm-e2e-classes-fail.png in the temporary directory.
import { check, open } from "./session.mjs";
import { readFileSync } from "node:fs";

const [url = "http://127.0.0.1:8080"] = process.argv.slice(2);
const session = await open("classes", { width: 1280, height: 860 });
const { page, log } = session;
const streams = []; // query parameters of every stream request the page makes
page.on("request", (r) => {
  const u = new URL(r.url());
  if (u.pathname === "/v1/samples/stream") streams.push(Object.fromEntries(u.searchParams));
});

// run starts panel B and waits for it to finish, returning the stream request's parameters.
async function run() {
  const before = streams.length;
  await page.click("#panel-b .run");
  await page.waitForSelector("#panel-b[data-state='done'], #panel-b[data-state='error']", { timeout: 120000 });
  const state = await page.$eval("#panel-b", (p) => ({ state: p.dataset.state, text: p.querySelector(".state").textContent }));
  check(state.state === "done", "panel B: " + state.text);
  check(streams.length === before + 1, `${streams.length - before} stream requests for one run`);
  return { q: streams[streams.length - 1], text: state.text };
}

const visible = (sel) => page.isVisible(sel);

await session.run(async () => {
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
  const models = await page.$$eval("#model option", (os) => os.map((o) => o.value));
  log("page loaded; models:", models.join(", "));
  check(models.join(",") === "plain,cond", `models ${models}, want plain,cond`);

  // Unconditional model: no class controls.
  check(await page.inputValue("#model") === "plain", "the first model is not selected");
  check(!(await visible("#class")) && !(await visible("#guidance")), "class controls shown for an unconditional model");
  await page.selectOption("#panel-b .sampler", "ddim");
  await page.fill("#panel-b .steps", "8");
  await page.fill("#n", "4");
  await page.fill("#seed", "3");
  let r = await run();
  check(!("class" in r.q) && !("guidance" in r.q), "unconditional run sent " + JSON.stringify(r.q));
  log("plain: controls hidden, run without class:", r.text);

  // Conditional model: the picker appears with none, all and the names; the slider waits for a class.
  await page.selectOption("#model", "cond");
  check(await visible("#class") && await visible("#guidance"), "class controls hidden for a conditional model");
  const opts = await page.$$eval("#class option", (os) => os.map((o) => `${o.value}=${o.textContent}`));
  check(opts.join("|") === "=none|all=all|0=0: zero|1=1: one|2=2: two", "class options " + opts.join("|"));
  check(await page.inputValue("#class") === "", "a class is preselected");
  check(await page.isDisabled("#guidance"), "guidance slider enabled without a class");
  check(await page.inputValue("#guidance") === "1.5" && (await page.textContent("#guidance-value")).trim() === "1.5",
    "slider does not start at the default guidance 1.5");
  r = await run();
  check(!("class" in r.q) && !("guidance" in r.q), "cond, class none, sent " + JSON.stringify(r.q));
  log("cond, class none: slider disabled, run without class");

  // Pick class "one" and move the slider with the keyboard: 1.5 + 6 steps of 0.5 = 4.5.
  await page.selectOption("#class", "1");
  check(!(await page.isDisabled("#guidance")), "guidance slider still disabled with a class");
  await page.focus("#guidance");
  for (let i = 0; i < 6; i++) await page.keyboard.press("ArrowRight");
  const shown = (await page.textContent("#guidance-value")).trim();
  check(await page.inputValue("#guidance") === "4.5" && shown === "4.5", `slider at ${await page.inputValue("#guidance")} showing ${shown}, want 4.5`);
  r = await run();
  check(r.q.model === "cond" && r.q.class === "1" && r.q.guidance === "4.5", "stream request " + JSON.stringify(r.q));
  check(r.text.includes("class one, s = 4.5"), "done state does not name the class: " + r.text);
  log("cond, class one, s = 4.5:", r.text);
  // An image arrived, and it is the one the API draws for that class and scale.
  const img = await page.$eval("#panel-b .xt", (i) => ({ src: i.src.slice(0, 22), w: i.naturalWidth, h: i.naturalHeight }));
  check(img.src === "data:image/png;base64," && img.w === 2 * 30 + 2 && img.h === 2 * 30 + 2, "final image " + JSON.stringify(img));
  const same = await page.evaluate(async () => {
    const src = document.querySelector("#panel-b .dl-png").href;
    const body = { model: "cond", class: 1, guidance: 4.5, sampler: "ddim", steps: 8, eta: 0, n: 4, seed: 3, clip: true, spacing: "linspace" };
    const r = await fetch("/v1/samples", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const buf = new Uint8Array(await r.arrayBuffer());
    let s = "";
    for (const x of buf) s += String.fromCharCode(x);
    return { same: src === "data:image/png;base64," + btoa(s), status: r.status, cls: r.headers.get("X-Ddpm-Class"), s: r.headers.get("X-Ddpm-Guidance") };
  });
  check(same.status === 200 && same.same && same.cls === "1" && same.s === "4.5", "the page's image differs from POST /v1/samples for class 1, s = 4.5: " + JSON.stringify(same));
  const dlName = await page.$eval("#panel-b .dl-png", (a) => a.download);
  check(dlName.includes("-class1-s4.5"), "PNG download name " + dlName);
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#panel-b .dl-npz")]);
  const npz = readFileSync(await dl.path());
  check(dl.suggestedFilename().includes("-class1-s4.5") && npz.subarray(0, 2).toString() === "PK", `NPZ download ${dl.suggestedFilename()} (${npz.length} bytes)`);
  log("image equals POST /v1/samples with class 1, s = 4.5; NPZ download", dl.suggestedFilename());

  // "all": n becomes 3 classes x per_class, drawn as one grid row per class.
  await page.selectOption("#class", "all");
  const perClass = await page.evaluate(async () => (await (await fetch("/v1/models")).json()).models[1].per_class);
  check(await page.inputValue("#n") === String(3 * perClass), `n ${await page.inputValue("#n")} for class all, want ${3 * perClass}`);
  r = await run();
  check(r.q.class === "all" && r.q.guidance === "4.5", "class all request " + JSON.stringify(r.q));
  const grid = await page.$eval("#panel-b .xt", (i) => [i.naturalWidth, i.naturalHeight]);
  check(grid[0] === perClass * 30 + 2 && grid[1] === 3 * 30 + 2, `class all grid ${grid}, want ${perClass} columns and 3 rows`);
  log(`cond, class all: ${perClass} per class, grid ${grid.join("x")}`);

  // Back to none: the slider is disabled again; back to plain: the controls go away.
  await page.selectOption("#class", "");
  check(await page.isDisabled("#guidance"), "slider enabled with class none");
  await page.selectOption("#class", "2");
  await page.selectOption("#model", "plain");
  check(!(await visible("#class")) && !(await visible("#guidance")), "class controls still shown after switching to plain");
  await page.fill("#n", "4");
  r = await run();
  check(!("class" in r.q), "plain after cond sent " + JSON.stringify(r.q));
  log("plain again: controls hidden, run without class");
});
