// The headless Chromium session every page test runs in: a throwaway profile, a logger with
// elapsed seconds, an assertion, the page's console errors collected, and on failure a screenshot
// in the temporary directory. CHROMIUM overrides the browser (default Debian's /usr/bin/chromium).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

// open starts the browser for the test called name with a window of the given viewport.
export async function open(name, viewport) {
  const profile = mkdtempSync(join(tmpdir(), `ddpm-e2e-${name}-`));
  const t0 = Date.now();
  const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  return {
    ctx, page, log, consoleErrors,
    // fail reports e, saves a screenshot of the page and returns the exit status 1.
    async fail(e) {
      console.error("FAIL:", e.message);
      const failShot = join(tmpdir(), `ddpm-e2e-${name}-fail.png`);
      try {
        await page.screenshot({ path: failShot, fullPage: true });
        console.error("screenshot of the failure:", failShot);
      } catch (_) {}
      return 1;
    },
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
    // run runs the test's body, fails it on any console error the page logged, closes the browser
    // and exits the process: status 0 and PASS, or 1 with the failure's screenshot.
    async run(body) {
      let code = 0;
      try {
        await body();
        check(consoleErrors.length === 0, "console errors: " + consoleErrors.join("; "));
      } catch (e) {
        code = await this.fail(e);
      } finally {
        await this.close();
      }
      log(code === 0 ? "PASS" : "FAIL");
      process.exit(code);
    },
  };
}
