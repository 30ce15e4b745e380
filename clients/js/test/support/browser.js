// Headless Chromium (Debian's `chromium`, driven by playwright-core) for the
// end-to-end tests. Playwright gives every launch a fresh temporary profile
// (--user-data-dir) itself and refuses that flag in args.
import { spawnSync } from "node:child_process";
import { chromium } from "playwright-core";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];
export const WAIT = { timeout: 20000 };

function chromiumPath() {
  const found = spawnSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" });
  if (found.status !== 0) {
    throw new Error("chromium is not installed: run `make chromium` (apt-get install chromium, as root)");
  }
  return found.stdout.trim();
}

export function launchChromium() {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, chromiumSandbox: false, args: FLAGS });
}

/** Resolve once the demo page says it is connected as `user`. */
export const connectedAs = (page, user) =>
  page.waitForFunction(
    (who) => document.getElementById("status-text").textContent === `connected as ${who}`,
    user,
    WAIT,
  );

/** Resolve once the demo page's badge shows `count`. */
export const badgeIs = (page, count) =>
  page.waitForFunction((n) => document.getElementById("count").dataset.count === String(n), count, WAIT);

export const badge = (page) => page.evaluate(() => document.getElementById("count").dataset.count);
