// Opens a link tonesweep printed for the MLflow UI in a fresh Chromium profile and reports what the
// page shows: the sidebar's mode and the runs table, as JSON on stdout; a screenshot if asked.
//   node mlflow_ui_check.mjs URL --chromium /usr/bin/chromium [--screenshot FILE]
import { chromium } from 'playwright-core';
import { HEADLESS_FLAGS } from './chromium.mjs';

const [url, ...rest] = process.argv.slice(2);
const option = (name) => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1] : undefined; };
const browser = await chromium.launch({ executablePath: option('--chromium'), args: HEADLESS_FLAGS });
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  await page.goto(url);
  await page.getByText('Run Name').first().waitFor({ timeout: 60000 });
  const text = await page.evaluate(() => document.body.innerText);
  if (option('--screenshot')) await page.screenshot({ path: option('--screenshot') });
  console.log(JSON.stringify({
    url: page.url(),
    modelRegistryLink: text.includes('Model registry'),
    genaiSidebar: ['Judges', 'Prompts & versions', 'Observability'].filter((word) => text.includes(word)),
    runsHeading: /\bRuns\b/.test(text),
  }));
} finally {
  await browser.close();
}
