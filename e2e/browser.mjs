// Browser test of the `ddpm serve` page in real headless Chromium (Debian's /usr/bin/chromium driven
// by playwright-core; no browser download). It loads the page, runs "Compare" with DDPM in panel A
// and DDIM in panel B from the same seed, checks that B's x_t and x0 images update at every step to
// the last one and that both runs end with a downloadable PNG, then saves a screenshot; finally it
// stops a long run with the Stop button and checks the server canceled the job. Against the default
// server it also checks that the shipped 4-step student is offered as "instant (4 steps)".
//
//   node e2e/browser.mjs http://127.0.0.1:8080 docs/serve.png [ddimSteps] [ddpmSteps]
//
// Exit status 0 on success; on failure the reason is printed and a screenshot of the page is saved
// as ddpm-e2e-browser-fail.png in the temporary directory.
import { check, open } from "./session.mjs";
import { readFileSync } from "node:fs";

const [url = "http://127.0.0.1:8080", shot = "docs/serve.png", ddimArg = "25", ddpmArg = "100"] = process.argv.slice(2);
const ddimSteps = Number(ddimArg), ddpmSteps = Number(ddpmArg);
const session = await open("browser", { width: 1280, height: 860 });
const { page, log, consoleErrors } = session;
await session.run(async () => {
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
  const models = await page.$$eval("#model option", (os) => os.map((o) => o.value));
  log("page loaded; models:", models.join(", "));
  check(models.length > 0, "no models in the selector");
  if (models.includes("mnist-instant")) {
    // The default server: the shipped 4-step student is offered as the instant option.
    const label = await page.$eval("#model option[value='mnist-instant']", (o) => o.textContent);
    check(label.includes("instant (4 steps)"), `the shipped student is listed as "${label}"`);
    log("instant option:", label);
  }

  // Same seed for both panels; A = DDPM, B = DDIM eta 0.
  await page.fill("#seed", "7");
  await page.fill("#n", "16");
  await page.selectOption("#panel-a .sampler", "ddpm");
  await page.fill("#panel-a .steps", String(ddpmSteps));
  await page.selectOption("#panel-b .sampler", "ddim");
  await page.fill("#panel-b .steps", String(ddimSteps));
  await page.fill("#panel-b .eta", "0");

  // Count every change of B's x_t and x0 images, and remember distinct sources.
  await page.evaluate(() => {
    window.__changes = { xt: 0, x0: 0, distinct: new Set() };
    for (const cls of ["xt", "x0"]) {
      const img = document.querySelector(`#panel-b .${cls}`);
      // Several changes can arrive in one callback: each record's old value is the previous image.
      new MutationObserver((records) => {
        window.__changes[cls] += records.length;
        for (const r of records) if (r.oldValue) window.__changes.distinct.add(r.oldValue);
        window.__changes.distinct.add(img.src);
      }).observe(img, { attributes: true, attributeFilter: ["src"], attributeOldValue: true });
    }
  });
  await page.click("#compare");
  log("compare started: A ddpm", ddpmSteps, "steps, B ddim", ddimSteps, "steps");

  // Wait for B to run, watching its progress.
  // A short run can pass through "running" between two polls, so "done" counts too.
  await page.waitForSelector("#panel-b[data-state='running'], #panel-b[data-state='done']", { timeout: 120000 });
  log("B started");
  await page.waitForFunction(() => Number(document.querySelector("#panel-b").dataset.frames) >= 2, null, { timeout: 60000 });
  const mid = await page.$eval("#panel-b .step", (e) => e.textContent);
  log("B mid-run:", mid);
  // Best effort: a second screenshot while the runs are under way (x_t still noisy, x0 a guess).
  const live = shot.replace(/\.png$/, "") + "-live.png";
  try {
    await page.waitForFunction((k) => Number(document.querySelector("#panel-b").dataset.frames) >= k, Math.ceil(0.4 * ddimSteps), { timeout: 60000, polling: 10 });
    if (await page.$eval("#panel-b", (p) => p.dataset.state === "running")) {
      await page.screenshot({ path: live, fullPage: true });
      log("live screenshot", live, "at B", await page.$eval("#panel-b .step", (e) => e.textContent));
    }
  } catch (_) {}
  await page.waitForSelector("#panel-b[data-state='done'], #panel-b[data-state='error']", { timeout: 300000 });
  const b = await page.$eval("#panel-b", (p) => ({ ...p.dataset, state: p.dataset.state, text: p.querySelector(".state").textContent }));
  log("B finished:", b.text);
  check(b.state === "done", "panel B did not finish: " + b.text);
  check(Number(b.total) === ddimSteps && Number(b.index) === ddimSteps, `B ended at step ${b.index}/${b.total}, want ${ddimSteps}/${ddimSteps}`);
  check(Number(b.frames) === ddimSteps, `B showed ${b.frames} step frames, want ${ddimSteps}`);
  const changes = await page.evaluate(() => ({ xt: window.__changes.xt, x0: window.__changes.x0, distinct: window.__changes.distinct.size }));
  log("B image updates:", JSON.stringify(changes));
  check(changes.xt >= ddimSteps && changes.x0 >= ddimSteps, `B images changed ${changes.xt} (x_t) and ${changes.x0} (x0) times, want >= ${ddimSteps}`);
  check(changes.distinct >= ddimSteps, `only ${changes.distinct} distinct images over ${ddimSteps} steps`);
  const dlB = await page.$eval("#panel-b .dl-png", (a) => ({ hidden: a.hidden, href: a.href.slice(0, 22), name: a.download }));
  check(!dlB.hidden && dlB.href === "data:image/png;base64," && dlB.name.endsWith(".png"), "B download link missing: " + JSON.stringify(dlB));

  await page.waitForSelector("#panel-a[data-state='done'], #panel-a[data-state='error']", { timeout: 600000 });
  const a = await page.$eval("#panel-a", (p) => ({ ...p.dataset, text: p.querySelector(".state").textContent }));
  log("A finished:", a.text);
  check(a.state === "done" && Number(a.index) === ddpmSteps, `panel A: ${a.text} at step ${a.index}`);

  // The download is the same PNG the API returns for the same request.
  const same = await page.evaluate(async (steps) => {
    const src = document.querySelector("#panel-b .dl-png").href;
    const r = await fetch("/v1/samples", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sampler: "ddim", steps, eta: 0, n: 16, seed: 7, clip: true, model: document.querySelector("#model").value, spacing: "linspace" }) });
    const buf = new Uint8Array(await r.arrayBuffer());
    let s = "";
    for (const x of buf) s += String.fromCharCode(x);
    return src === "data:image/png;base64," + btoa(s);
  }, ddimSteps);
  check(same, "B's download differs from POST /v1/samples with the same parameters");
  log("B's download equals POST /v1/samples");
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#panel-b .dl-npz")]);
  const npz = readFileSync(await dl.path());
  check(dl.suggestedFilename().endsWith(".npz") && npz.subarray(0, 2).toString() === "PK" && npz.includes("arr_0.npy"),
    `NPZ download ${dl.suggestedFilename()} (${npz.length} bytes) is not an .npz holding arr_0`);
  log("NPZ download:", dl.suggestedFilename(), npz.length, "bytes");
  check(consoleErrors.length === 0, "console errors: " + consoleErrors.join("; "));
  await page.screenshot({ path: shot, fullPage: true });
  log("screenshot", shot);

  // Stop: a long run in a scratch copy of panel A's settings, aborted after a few frames, must be
  // canceled on the server (the sampler stops), not run to the end.
  const canceled = async () => {
    const m = await (await page.request.get(url + "/metrics")).text();
    const line = m.split("\n").find((l) => l.startsWith('ddpm_jobs_total{outcome="canceled"}'));
    return line ? Number(line.split(" ")[1]) : 0;
  };
  const before = await canceled();
  await page.fill("#panel-a .steps", String(Math.min(1000, 10 * ddpmSteps)));
  await page.click("#panel-a .run");
  await page.waitForFunction(() => Number(document.querySelector("#panel-a").dataset.frames) >= 3, null, { timeout: 120000 });
  await page.click("#panel-a .stop");
  await page.waitForSelector("#panel-a[data-state='stopped']", { timeout: 10000 });
  let after = before;
  for (let i = 0; i < 100 && after === before; i++) {
    await page.waitForTimeout(100);
    after = await canceled();
  }
  check(after === before + 1, `Stop: canceled jobs ${before} -> ${after}, want one more`);
  log("Stop canceled the run on the server at", await page.$eval("#panel-a .step", (e) => e.textContent));
});
