// The flags that make Debian's chromium run headless as root in a sandboxed CI container, shared by
// every script that drives it (browser_check.mjs, page_driver.mjs, bench/page_speed.mjs).
export const HEADLESS_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
