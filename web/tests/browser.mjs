// The browser test's driver, run by tests/web_live.rs: Playwright (playwright-core, no browser
// download) drives Debian's Chromium through the web client served by a real `horsestream api`:
// log in, add a file stream through the form, start it, select it, and wait until the overlay
// canvas draws horse boxes over the playing video; then save a screenshot, and change the
// stream's alert settings (no movement after 2 min, lying down off), and read the pose line of
// the first horse's profile in the horse panel. Prints one JSON line
// with what it saw ({"type":"result", …}) or {"type":"error"}; progress lines go to stderr.
//
// Env: HS_URL, HS_USER, HS_PASSWORD, HS_STREAM (id to create), HS_VIDEO_URL (file:///…),
// HS_SCREENSHOT (PNG path), HS_CHROMIUM (default /usr/bin/chromium), HS_TIMEOUT_MS (default 240000).
import { chromium } from "playwright-core";

const env = process.env;
const timeout = Number(env.HS_TIMEOUT_MS ?? 240_000);
const log = (m) => process.stderr.write(`browser: ${m}\n`);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const browser = await chromium.launch({
  executablePath: env.HS_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const consoleLines = [];
page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));

try {
  await page.goto(env.HS_URL);
  await page.fill('input[name="username"]', env.HS_USER);
  await page.fill('input[name="password"]', env.HS_PASSWORD);
  await page.click('button[type="submit"]');
  await page.waitForSelector('[data-testid="connection"][data-state="connected"]', { timeout: 30_000 });
  log("logged in, socket connected");

  const h264 = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E"'));
  log(`MSE H.264 support: ${h264}`);

  await page.fill('input[name="stream-id"]', env.HS_STREAM);
  await page.fill('input[name="stream-url"]', env.HS_VIDEO_URL);
  await page.click('[data-testid="add-stream"] button[type="submit"]');
  const card = page.locator(`[data-testid="stream-${env.HS_STREAM}"]`);
  await card.waitFor({ timeout: 10_000 });
  await card.getByRole("button", { name: "Start" }).click();
  await card.getByRole("button", { name: "Stop" }).waitFor({ timeout: 10_000 });
  log("stream added and started");
  await card.click();

  // Boxes drawn: the canvas says how many it drew for the frame on screen, and its pixels show
  // them (the canvas is transparent where nothing is drawn).
  const seen = await page.waitForFunction(
    () => {
      const c = document.querySelector('[data-testid="overlay"]');
      const v = document.querySelector('[data-testid="video"]');
      if (!c || !v || Number(c.dataset.boxes ?? 0) === 0 || v.paused || v.readyState < 2) return false;
      const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
      if (painted < 200) return false;
      return {
        boxes: Number(c.dataset.boxes),
        detected: Number(c.dataset.detected ?? 0),
        keypoints: Number(c.dataset.keypoints ?? 0),
        pts: Number(c.dataset.pts),
        painted,
        currentTime: v.currentTime,
        videoWidth: v.videoWidth,
        videoHeight: v.videoHeight,
      };
    },
    null,
    { timeout, polling: 250 },
  );
  const result = await seen.jsonValue();
  const status = await card.getAttribute("data-status");
  await page.screenshot({ path: env.HS_SCREENSHOT });

  // Alert settings: no movement after 2 min, lying down off, saved through the API.
  const settings = page.locator('[data-testid="alert-settings"]');
  await settings.waitFor({ timeout: 10_000 });
  await settings.locator('input[name="no-movement-min"]').fill("2");
  await settings.locator('input[name="lying-down-s-on"]').uncheck();
  await settings.getByRole("button", { name: "save" }).click();
  await page.waitForSelector('[data-testid="alert-settings"][data-saved="true"]', { timeout: 10_000 });
  log("alert settings saved");

  // The horse panel: open the first horse's profile until it shows a gait window's pose line
  // (the profile is read when the horse is picked, so pick it again while none is stored).
  const horses = page.locator('[data-testid="horses"]');
  const chip = horses.locator(".chips button").first();
  await chip.waitFor({ timeout });
  const poseLine = horses.locator('[data-testid="horse-pose"]');
  const until = Date.now() + timeout;
  while (!(await poseLine.isVisible())) {
    if (Date.now() > until) throw new Error("no gait window with pose in the horse panel");
    await chip.click();
    await poseLine.waitFor({ timeout: 2_000 }).catch(() => {});
  }
  const horsePose = await poseLine.innerText();
  log(`horse panel: ${horsePose}`);
  out({
    type: "result",
    ...result,
    streamStatus: status,
    h264,
    screenshot: env.HS_SCREENSHOT,
    alertSettingsSaved: true,
    horsePose,
  });
} catch (e) {
  try {
    await page.screenshot({ path: env.HS_SCREENSHOT });
  } catch {}
  out({ type: "error", message: String(e && e.stack || e), console: consoleLines.slice(-30) });
  process.exitCode = 1;
} finally {
  await browser.close();
}
