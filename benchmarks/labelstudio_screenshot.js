// The labeling page of a Label Studio task, as a PNG (docs/images/labelstudio_labeling.png).
//
// Headless Chromium from Debian's packages (apt-get install chromium), driven by
// playwright-core, which downloads no browser; install it outside the repository:
//   mkdir -p /tmp/shot && cd /tmp/shot && npm install playwright-core
//   NODE_PATH=/tmp/shot/node_modules LS_USER=... LS_PASSWORD=... \
//     node benchmarks/labelstudio_screenshot.js http://127.0.0.1:8080 PROJECT TASK out.png
// It logs in with a fresh profile (--user-data-dir in a new temporary folder), opens
// the task, waits WAIT_MS (15000) for the waveform and regions, and saves the page.
const { chromium } = require('playwright-core');
(async () => {
  const [url, project, task, out] = process.argv.slice(2);
  const dir = require('fs').mkdtempSync('/tmp/chromium-profile-');
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 720 },
  });
  const page = await context.newPage();
  await page.goto(`${url}/user/login/`);
  await page.fill('input[name=email]', process.env.LS_USER);
  await page.fill('input[name=password]', process.env.LS_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.goto(`${url}/projects/${project}/data?task=${task}`);
  await page.waitForTimeout(Number(process.env.WAIT_MS || 15000));
  await page.screenshot({ path: out });
  await context.close();
})().catch((e) => { console.error(e); process.exit(1); });
