// Drives the live dashboard in Debian's chromium (playwright-core, no bundled browser):
//   node dashboard.mjs URL CHROMIUM SCREENSHOT
// Reads the request count twice and checks it grew, checks the charts are drawn, keeps
// a screenshot, clicks Stop and waits for the verdict. Prints one JSON line of what it
// saw; exits non-zero with the reason when something is missing. Run by
// tests/it/dashboard.rs, which checks the run's exit code and reports.
import { chromium } from "playwright-core";

const [url, executablePath, screenshot] = process.argv.slice(2);
const fail = (why) => {
  console.error(`dashboard test: ${why}`);
  process.exit(1);
};
if (!url || !executablePath || !screenshot) fail("usage: node dashboard.mjs URL CHROMIUM SCREENSHOT");

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  const requests = async () => Number(await page.locator("#requests").textContent());
  await page.waitForFunction(() => Number(document.querySelector("#requests").textContent) > 0, null, { timeout: 20000 });
  seen.first = await requests();
  await page.waitForFunction((n) => Number(document.querySelector("#requests").textContent) > n, seen.first, { timeout: 20000 });
  seen.second = await requests();
  if (!(seen.second > seen.first)) fail(`the request count did not grow: ${seen.first} then ${seen.second}`);
  // The live table follows each request name and phase every second.
  await page.waitForFunction(() => document.querySelectorAll("#live tr").length > 2, null, { timeout: 20000 });
  seen.live = await page.locator("#live tr").evaluateAll((rows) => rows.slice(1).map((r) => [...r.cells].map((c) => c.textContent)));
  seen.phase = await page.locator("#phase").textContent();
  seen.timeline = await page.locator("#timeline").textContent();
  // Every threshold's standing, live.
  await page.waitForFunction(() => document.querySelectorAll("#thresholds tr").length > 1, null, { timeout: 20000 });
  seen.thresholds = await page.locator("#thresholds tr").evaluateAll((rows) => rows.slice(1).map((r) => [...r.cells].map((c) => c.textContent)));
  seen.state = await page.locator("#state").textContent();
  seen.charts = await page.locator("#charts svg.chart").count();
  seen.polylines = await page.locator("#charts svg.chart polyline").count();
  if (seen.charts < 3 || seen.polylines < 3) fail(`charts not drawn: ${seen.charts} charts, ${seen.polylines} lines`);
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.click("#stop");
  await page.waitForFunction(() => document.querySelector("#verdict").textContent !== "", null, { timeout: 30000 });
  seen.verdict = await page.locator("#verdict").textContent();
  seen.report = await page.frameLocator("#report").locator("h1").textContent({ timeout: 10000 });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-final.png"), fullPage: true });
  seen.errors = errors;
} catch (e) {
  fail(`${e.message || e}; seen so far ${JSON.stringify(seen)}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
