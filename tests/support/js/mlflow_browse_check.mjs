// Browses a sweep in the real MLflow UI the way a user would, from a link `tonesweep ui` printed, in a
// fresh Chromium profile; prints what each page showed as one JSON line, and screenshots if asked.
//   node mlflow_browse_check.mjs URL --chromium /usr/bin/chromium --parent RUN_ID [--shots DIR]
// 1. the printed link: the runs table (mode, column headers, rows' text);
// 2. the experiment's Models tab: the logged models listed;
// 3. the parent run's artifacts: the names in its artifact tree (pareto/, listen/ opened).
import { chromium } from 'playwright-core';
import { HEADLESS_FLAGS } from './chromium.mjs';

const [url, ...rest] = process.argv.slice(2);
const option = (name) => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1] : undefined; };
const shots = option('--shots');
const browser = await chromium.launch({ executablePath: option('--chromium'), args: HEADLESS_FLAGS });
const seen = {};
try {
  const page = await (await browser.newContext({ viewport: { width: 1600, height: 1000 } })).newPage();
  const shoot = async (name) => { if (shots) await page.screenshot({ path: `${shots}/${name}.png` }); };
  const bodyText = () => page.evaluate(() => document.body.innerText);

  await page.goto(url);
  await page.getByText('Run Name').first().waitFor({ timeout: 60000 });
  await page.waitForTimeout(2500);  // the shared view applies its columns after the first render
  await shoot('runs');
  // the table renders only the columns in sight: read them all in a wide window
  await page.setViewportSize({ width: 3200, height: 1000 });
  await page.waitForTimeout(1500);
  const headers = await page.evaluate(() => [...document.querySelectorAll('[role="columnheader"]')]
    .map((h) => h.innerText.trim()).filter(Boolean));
  const table = await bodyText();
  await shoot('runs-wide');
  await page.setViewportSize({ width: 1600, height: 1000 });
  seen.runs = { url: page.url(), headers, text: table, modelRegistryLink: table.includes('Model registry'),
    genaiSidebar: ['Judges', 'Prompts & versions', 'Observability'].filter((word) => table.includes(word)) };

  // the same view's chart mode: the size-vs-quality section first
  await page.goto(`${url}&compareRunsMode=CHART`);
  await page.getByText('size vs quality').first().waitFor({ timeout: 60000 });
  await page.waitForTimeout(2500);
  const sections = (await bodyText()).split('\n').filter((line) => /^\(\d+\)$|size vs quality/.test(line));
  seen.charts = { sections, scatter: await page.locator('.js-plotly-plot').count() };
  await shoot('charts');

  const base = url.split('#')[0];
  const experiment = url.match(/experiments\/(\d+)/)[1];
  await page.goto(`${base}#/experiments/${experiment}/models?workflowType=machine_learning`);
  await page.waitForTimeout(4000);
  seen.models = { text: await bodyText() };
  await shoot('models');

  await page.goto(`${base}#/experiments/${experiment}/runs/${option('--parent')}/artifacts?workflowType=machine_learning`);
  await page.getByText('pareto').first().waitFor({ timeout: 30000 });
  for (const folder of ['pareto', 'listen']) {
    const node = page.getByText(folder, { exact: true }).first();
    if (await node.count()) await node.click();
    await page.waitForTimeout(800);
  }
  seen.artifacts = { text: await bodyText() };
  for (const [file, shot] of [['front.html', 'listen'], ['size-vs-quality.html', 'artifacts']]) {
    const item = page.getByText(file, { exact: true }).first();
    if (await item.count()) { await item.click(); await page.waitForTimeout(2500); await shoot(shot); }
  }
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
