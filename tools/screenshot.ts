// A PNG of a local HTML page with Debian's chromium (playwright-core), for the pictures in docs/.
//
//   node --import tsx tools/screenshot.ts PAGE.html OUT.png [--width 900] [--height 700]
//
// For example, the HAN attention picture in docs/seq2seq.md:
//   npx moxing han-attention --model runs/families/han-sotu --file address.txt --html /tmp/han.html
//   node --import tsx tools/screenshot.ts /tmp/han.html docs/han-attention.png

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const [page, out, ...rest] = process.argv.slice(2);
if (!page || !out) {
  console.error("usage: node --import tsx tools/screenshot.ts PAGE.html OUT.png [--width W] [--height H]");
  process.exit(2);
}
const flag = (name: string, fallback: number) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? Number(rest[i + 1]) : fallback;
};
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium" });
try {
  const p = await browser.newPage({ viewport: { width: flag("width", 900), height: flag("height", 700) } });
  await p.goto(pathToFileURL(resolve(page)).href);
  await p.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
