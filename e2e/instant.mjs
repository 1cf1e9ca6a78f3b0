// Browser test of how the page treats a progressively distilled student (ddpm distill), in headless
// Chromium, against a server with an ordinary model first ("plain") and a 4-step student ("fast",
// written by `loadtest -write-model -distilled 4`: random weights with a student's metadata are
// enough, since the test checks what the page offers, sends and reports, not the digits). A student
// is only right over its own grid, which no spacing reproduces, so the page must steer the user to
// it and say so when they leave it: the picker names "fast · instant (4 steps)"; picking it sets
// panels A and B to ddim, 4 steps, eta 0 and the "distilled grid" spacing, whose runs send no
// spacing and finish with "ddim-4 eta=0 distilled" and no warning; 6 steps finish with the
// server's warning; picking "plain" again brings back the panels' own settings.
//
//   node e2e/instant.mjs http://127.0.0.1:8080
//
// Exit status 0 on success; on failure the reason is printed and a screenshot of the page is saved
// as ddpm-e2e-instant-fail.png in the temporary directory.
import { check, open } from "./session.mjs";

const [url = "http://127.0.0.1:8080"] = process.argv.slice(2);
const session = await open("instant", { width: 1280, height: 860 });
const { page, log } = session;
const streams = []; // query parameters of every stream request the page makes
page.on("request", (r) => {
  const u = new URL(r.url());
  if (u.pathname === "/v1/samples/stream") streams.push(Object.fromEntries(u.searchParams));
});

// settings reads the sampler controls of panel p ("a" or "b"), with the spacing's visible label.
const settings = (p) => page.$eval(`#panel-${p}`, (panel) => {
  const sp = panel.querySelector(".spacing");
  return {
    sampler: panel.querySelector(".sampler").value, steps: panel.querySelector(".steps").value, eta: panel.querySelector(".eta").value,
    spacing: sp.value, spacingLabel: sp.selectedOptions[0] ? sp.selectedOptions[0].textContent : "",
    spacings: Array.from(sp.options, (o) => o.textContent).join(","), shown: panel.dataset.sampler,
  };
});

// run starts panels (["a", "b"] through Compare, or one) and waits for them to finish; it returns
// each panel's stream request, done text and frame count.
async function run(panels) {
  const before = streams.length;
  if (panels.length === 2) await page.click("#compare");
  else await page.click(`#panel-${panels[0]} .run`);
  const out = {};
  for (const p of panels) {
    await page.waitForSelector(`#panel-${p}[data-state='done'], #panel-${p}[data-state='error']`, { timeout: 120000 });
    const st = await page.$eval(`#panel-${p}`, (el) => ({ state: el.dataset.state, text: el.querySelector(".state").textContent, frames: Number(el.dataset.frames) }));
    check(st.state === "done", `panel ${p}: ${st.text}`);
    out[p] = st;
  }
  check(streams.length === before + panels.length, `${streams.length - before} stream requests for ${panels.length} run(s)`);
  // Compare starts A, then B, so their requests come in that order.
  panels.forEach((p, i) => { out[p].q = streams[before + i]; });
  return out;
}

const warning = "was distilled for 4 steps of ddim (eta 0) over the timesteps [999 748 498 247]";

await session.run(async () => {
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
  const models = await page.$$eval("#model option", (os) => os.map((o) => `${o.value}=${o.textContent}`));
  log("page loaded; models:", models.join(" | "));
  check(models.length === 2 && models[0].startsWith("plain=plain (") && models[1] === "fast=fast · instant (4 steps)",
    "model picker " + models.join(" | ") + ', want plain and "fast · instant (4 steps)"');
  check(await page.inputValue("#model") === "plain", "the first model is not selected");

  // Panel settings of the user's own, not the page's defaults, so that their return is telling.
  await page.selectOption("#panel-a .sampler", "ddpm");
  await page.fill("#panel-a .steps", "12");
  await page.selectOption("#panel-a .spacing", "trailing");
  await page.selectOption("#panel-b .sampler", "ddim");
  await page.fill("#panel-b .steps", "8");
  await page.fill("#panel-b .eta", "0.5");
  await page.selectOption("#panel-b .spacing", "quadratic");
  await page.fill("#n", "4");
  await page.fill("#seed", "5");
  const plainA = await settings("a"), plainB = await settings("b");
  check(!plainA.spacings.includes("distilled grid") && !plainB.spacings.includes("distilled grid"),
    `an ordinary model offers the distilled grid: ${plainA.spacings}`);

  // The student: both panels on its grid.
  await page.selectOption("#model", "fast");
  for (const p of ["a", "b"]) {
    const s = await settings(p);
    check(s.sampler === "ddim" && s.steps === "4" && Number(s.eta) === 0 && s.spacing === "" && s.spacingLabel === "distilled grid" && s.shown === "ddim",
      `panel ${p} for the student: ${JSON.stringify(s)}, want ddim, 4 steps, eta 0, the distilled grid`);
  }
  check(await page.isVisible("#panel-a .eta"), "panel A hides eta after switching to ddim");
  let r = await run(["a", "b"]);
  for (const p of ["a", "b"]) {
    const { q, text, frames } = r[p];
    check(q.model === "fast" && q.sampler === "ddim" && q.steps === "4" && q.eta === "0" && !("spacing" in q),
      `panel ${p} on the student sent ${JSON.stringify(q)}, want ddim, 4 steps, eta 0 and no spacing`);
    check(text.includes("ddim-4 eta=0 distilled"), `panel ${p} done line does not name the distilled sampler: ${text}`);
    check(!text.includes("was distilled for"), `panel ${p} warned on the student's own grid: ${text}`);
    check(frames === 4, `panel ${p}: ${frames} frames, want 4`);
  }
  log("fast: both panels on the distilled grid:", r.b.text);

  // Off the grid: the run still happens, and the done line carries the server's warning.
  await page.fill("#panel-b .steps", "6");
  r = await run(["b"]);
  check(r.b.q.steps === "6" && !("spacing" in r.b.q), "6 steps sent " + JSON.stringify(r.b.q));
  check(r.b.text.includes("ddim-6") && r.b.text.includes(warning), `done line at 6 steps lacks the warning: ${r.b.text}`);
  check(r.b.frames === 6, `${r.b.frames} frames at 6 steps`);
  log("fast, 6 steps: warned:", r.b.text);

  // Back to the ordinary model: the panels' own settings return, the distilled grid goes.
  await page.selectOption("#model", "plain");
  for (const [p, want] of [["a", plainA], ["b", plainB]]) {
    const s = await settings(p);
    check(JSON.stringify(s) === JSON.stringify(want), `panel ${p} after plain again: ${JSON.stringify(s)}, want ${JSON.stringify(want)}`);
  }
  r = await run(["b"]);
  check(r.b.q.model === "plain" && r.b.q.steps === "8" && r.b.q.eta === "0.5" && r.b.q.spacing === "quadratic", "plain again sent " + JSON.stringify(r.b.q));
  check(!r.b.text.includes("distilled"), "plain run reports distillation: " + r.b.text);
  log("plain again: panel settings restored:", r.b.text);
});
