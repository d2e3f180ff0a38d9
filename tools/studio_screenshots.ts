/// <reference lib="dom" />
// Screenshots of the studio's pages for docs/ (docs/studio-chat.png, studio-inside.png,
// studio-training.png), taken in Debian's chromium with a tiny chat model trained here in seconds,
// a short real training run, and a "learn now" update. Run by hand after changing the pages:
//
//   node --import tsx tools/studio_screenshots.ts
//
// CJK labels (猫, 狗, 汉堡) need a CJK font: apt-get install -y fonts-wqy-zenhei.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { createServer } from "../src/serve/server.js";
import { train } from "../src/train/trainer.js";
import { tinyChatModel } from "../test/serve/helpers.js";

const docs = join(dirname(fileURLToPath(import.meta.url)), "..", "docs");
const tmp = mkdtempSync(join(tmpdir(), "moxing-shots-"));
try {
  tinyChatModel(join(tmp, "chat"), { steps: 200 });
  await train(
    {
      out: join(tmp, "runs", "sotu-tiny"),
      text: "We the people of the United States, in order to form a more perfect union, establish justice. ".repeat(60),
      nLayer: 2,
      nHead: 2,
      nEmbd: 64,
      blockSize: 32,
      batchSize: 8,
      maxSteps: 150,
      evalInterval: 25,
    },
    {},
  );
  const server = await createServer({
    models: [join(tmp, "chat")],
    host: "127.0.0.1",
    port: 0,
    db: join(tmp, "fb.db"),
    runsDir: join(tmp, "runs"),
    learn: { steps: 30, learningRate: 3e-3 }, // the tiny demo model needs a stronger update than the default
  });
  const browser = await chromium.launch({ executablePath: process.env.MOXING_CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    await page.goto(`${server.url}/`);
    await page.waitForSelector("#model option", { state: "attached" });
    // Chat: an answer, thumbs-down and a correction, two answers to pick from, then learn now.
    await page.fill("#temperature", "0");
    await page.fill("#input", "hi");
    await page.press("#input", "Enter");
    await page.waitForSelector(".msg.assistant .tools");
    await page.click('.msg.assistant button[aria-label^="Thumbs down"]');
    await page.waitForSelector('button[aria-pressed="true"]');
    await page.click('.msg.assistant button:has-text("Correct this answer")');
    await page.fill('textarea[aria-label="The better answer"]', "ciao");
    await page.click('button:has-text("Save correction")');
    await page.waitForSelector(".corrected");
    await page.fill("#temperature", "0.9");
    await page.fill("#input", "bye");
    await page.click("#two");
    await page.waitForSelector(".pair-answers .tools");
    await page.click('.pair-answers button:has-text("Pick this one") >> nth=0');
    await page.waitForSelector(".pair-answers .msg.chosen");
    await page.click("#learn");
    await page.waitForSelector(".learn-result", { timeout: 120_000 });
    await page.screenshot({ path: join(docs, "studio-chat.png") });
    // Inside the model.
    await page.click("#tab-inside");
    await page.fill("#inside-text", "hi there");
    await page.click("#att-go");
    await page.waitForSelector("#att-grid button >> nth=3");
    await page.click("#emb-go");
    await page.waitForSelector("#emb-notes h3");
    await page.click("#pos-go");
    await page.fill("#next-steps", "6");
    await page.fill("#inside-text", "hi");
    await page.click("#next-go");
    await page.waitForSelector(".step");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(docs, "studio-inside.png"), fullPage: true });
    // Training.
    await page.click("#tab-training");
    await page.selectOption("#run", "sotu-tiny");
    await page.waitForSelector("#chart-tps .uplot canvas");
    await page.screenshot({ path: join(docs, "studio-training.png") });
  } finally {
    await browser.close();
    await server.shutdown(1000);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`screenshots written to ${docs}`);
