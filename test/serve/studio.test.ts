/// <reference lib="dom" />
// The studio in a real browser: Debian's chromium driven by playwright-core against `moxing serve` on
// 127.0.0.1. A message gets a streamed reply; thumbs-down and a correction land in SQLite; "show me
// two" and a pick land as a choice; the attention view draws its heatmaps; the training view charts a
// real run's metrics.jsonl; the tabs answer the keyboard.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { FeedbackStore } from "../../src/chat/store.js";
import type { MoxingServer } from "../../src/serve/server.js";
import { train } from "../../src/train/trainer.js";
import { startServer, TINY_LEARN, tinyChatModel } from "./helpers.js";

const CHROMIUM = process.env.MOXING_CHROMIUM ?? "/usr/bin/chromium";
const tmp = mkdtempSync(join(tmpdir(), "moxing-studio-"));
const db = join(tmp, "feedback.db");
let server: MoxingServer;
let browser: Browser;
let page: Page;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: install Debian's (apt-get install -y chromium; .ci/run does) or set MOXING_CHROMIUM`);
  }
  tinyChatModel(join(tmp, "chat"));
  await train(
    {
      out: join(tmp, "runs", "tiny"),
      text: "to be or not to be, that is the question. ".repeat(20),
      nLayer: 1,
      nHead: 2,
      nEmbd: 16,
      blockSize: 16,
      batchSize: 4,
      maxSteps: 12,
      evalInterval: 6,
    },
    {},
  );
  server = await startServer({ models: [join(tmp, "chat")], db, runsDir: join(tmp, "runs"), learn: TINY_LEARN });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.url}/`);
  await page.waitForSelector("#model option", { state: "attached" });
  assert.deepEqual(errors, []);
});
after(async () => {
  await browser?.close();
  await server?.shutdown(1000);
  rmSync(tmp, { recursive: true, force: true });
});

/** Canvas pixels that are drawn (not transparent), and how many distinct colours they have. */
async function inked(selector: string): Promise<{ drawn: number; colours: number }> {
  return page.$eval(selector, (c) => {
    const canvas = c as HTMLCanvasElement;
    const d = (canvas.getContext("2d") as CanvasRenderingContext2D).getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set<number>();
    let drawn = 0;
    for (let i = 0; i < d.length; i += 4) {
      if ((d[i + 3] as number) === 0) continue;
      drawn++;
      colours.add(((d[i] as number) << 16) | ((d[i + 1] as number) << 8) | (d[i + 2] as number));
    }
    return { drawn: drawn / (d.length / 4), colours: colours.size };
  });
}

describe("the studio in chromium", () => {
  test("a message gets a streamed reply", async () => {
    await page.fill("#temperature", "0");
    // Record every partial text of the answer while it streams in.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => {
        const el = document.querySelector('[data-message="pending-0"] .content');
        if (el?.textContent && seen[seen.length - 1] !== el.textContent) seen.push(el.textContent);
      }).observe(document.getElementById("messages") as HTMLElement, { childList: true, subtree: true, characterData: true });
    });
    const reply = page.waitForResponse((r) => r.url().includes("/reply"));
    await page.fill("#input", "hi");
    await page.press("#input", "Enter");
    await page.waitForSelector(".msg.assistant .tools");
    assert.equal(await page.textContent(".msg.assistant .content"), "hello there");
    // The server sends the answer in pieces, one event per token...
    const events = (await (await reply).text()).split("\n\n").filter((b) => b.includes('"type":"delta"'));
    assert.ok(events.length >= 2, `streamed as ${events.length} delta events`);
    // ...and the page shows them as they come. On a loaded machine several events can arrive in one
    // read and be shown in one update, so the page is only required to end on the whole answer
    // after starting from an empty one.
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    assert.ok(seen.length >= 1 && seen[seen.length - 1] === "hello there", `shown as it streamed: ${JSON.stringify(seen)}`);
  });

  test("thumbs-down and a correction are rows in the SQLite store", async () => {
    await page.click('.msg.assistant button[aria-label^="Thumbs down"]');
    await page.waitForSelector('.msg.assistant button[aria-label^="Thumbs down"][aria-pressed="true"]');
    await page.click('.msg.assistant button:has-text("Correct this answer")');
    await page.fill('.msg.assistant textarea[aria-label="The better answer"]', "hello, friend");
    await page.click('.msg.assistant button:has-text("Save correction")');
    await page.waitForSelector(".msg.assistant .corrected");
    const id = Number(await page.getAttribute(".msg.assistant", "data-message"));
    const store = FeedbackStore.open(db, { readonly: true });
    try {
      assert.deepEqual(store.db.prepare("SELECT message_id, rating FROM ratings").all(), [{ message_id: id, rating: -1 }]);
      assert.deepEqual(store.db.prepare("SELECT message_id, content FROM corrections").all(), [
        { message_id: id, content: "hello, friend" },
      ]);
      assert.equal(store.message(id)?.content, "hello there");
      assert.equal(store.message(id)?.role, "assistant");
    } finally {
      store.close();
    }
  });

  test("show me two, then pick one: a choice in the store", async () => {
    await page.fill("#temperature", "1.5");
    await page.fill("#input", "bye");
    await page.click("#two");
    await page.waitForSelector(".pair-answers .msg.assistant .tools");
    const pair = await page.$$eval(".pair-answers .msg.assistant", (els) => els.map((e) => Number(e.getAttribute("data-message"))));
    assert.equal(pair.length, 2);
    await page.click(`.pair-answers [data-message="${pair[1]}"] button:has-text("Pick this one")`);
    await page.waitForSelector(".pair-answers .msg.chosen");
    const store = FeedbackStore.open(db, { readonly: true });
    try {
      assert.deepEqual(store.db.prepare("SELECT chosen_id, rejected_id FROM choices").all(), [
        { chosen_id: pair[1], rejected_id: pair[0] },
      ]);
    } finally {
      store.close();
    }
  });

  test("the attention view draws a heatmap for every layer and head", async () => {
    await page.click("#tab-inside");
    await page.fill("#inside-text", "hi there");
    await page.click("#att-go");
    await page.waitForSelector("#att-grid button >> nth=3");
    assert.equal(await page.locator("#att-grid button").count(), 4, "2 layers x 2 heads");
    const big = await inked("#att-canvas");
    assert.ok(big.drawn > 0.4 && big.colours > 8, `the heatmap is drawn: ${JSON.stringify(big)}`);
    const small = await inked("#att-grid button:nth-of-type(4) canvas");
    assert.ok(small.drawn > 0.9, `the small map of layer 1 head 1 is drawn: ${JSON.stringify(small)}`);
    await page.click("#pos-go");
    await page.waitForFunction(() => (document.getElementById("pos-caption")?.textContent ?? "").includes("positions"));
    assert.ok((await inked("#pos-sim")).colours > 8);
  });

  test("the training view charts a run's loss, learning rate and tokens/s", async () => {
    await page.click("#tab-training");
    await page.waitForSelector("#chart-loss .uplot canvas");
    assert.equal(await page.$eval("#run", (s) => (s as HTMLSelectElement).value), "tiny");
    for (const chart of ["#chart-loss", "#chart-lr", "#chart-tps"]) {
      assert.ok((await inked(`${chart} .uplot canvas`)).drawn > 0.005, `${chart} has lines`);
    }
    const legend = await page.textContent("#chart-loss .u-legend");
    assert.match(legend ?? "", /train_loss/);
    assert.match(legend ?? "", /val_loss/);
  });

  test("the tabs answer the arrow keys", async () => {
    await page.focus("#tab-training");
    await page.keyboard.press("ArrowRight");
    assert.equal(await page.getAttribute("#tab-chat", "aria-selected"), "true");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "tab-chat");
    assert.equal(await page.isVisible("#panel-chat"), true);
    assert.equal(await page.isVisible("#panel-training"), false);
  });
});
