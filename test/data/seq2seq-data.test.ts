// Translation and summarisation data: verse pairs parsed from diatheke's output (a tiny committed
// sample of the KJV and Reina-Valera 1909 modules), split by books; subject/body pairs of mails.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { osisToText, parseDiatheke, splitByBooks, versePairs } from "../../src/data/bible.js";
import { cleanBody, cleanSubject, firstLineBaseline, isHeldOut, subjectPair } from "../../src/data/subjects.js";

const sample = (name: string) => readFileSync(new URL(`fixtures/diatheke-${name}.txt`, import.meta.url), "utf8");

describe("Bible verse pairs", () => {
  test("diatheke's OSIS becomes plain text, psalm titles kept once", () => {
    const kjv = parseDiatheke(sample("kjv"));
    assert.equal(kjv.get("Genesis 1:1")?.text, "In the beginning God created the heaven and the earth.");
    assert.equal(kjv.get("Psalms 3:1")?.text.startsWith("A Psalm of David, when he fled from Absalom his son. LORD, how are"), true);
    // The title diatheke repeats before later lines is not part of them (Psalm 145's, before Revelation).
    assert.equal(kjv.get("Psalms 3:2")?.text.startsWith("Many there be which say of my soul"), true);
    assert.equal(kjv.get("Revelation of John 22:21")?.text, "The grace of our Lord Jesus Christ be with you all. Amen.");
    assert.equal(
      osisToText('<w savlm="x">Y dijo</w> <w>Dios</w>: ¡<w>OH</w> ( <w>Selah</w> ) <title>T</title>'),
      "Y dijo Dios: ¡OH (Selah)",
    );
  });

  test("pairs by reference, dropping verses one side lacks, and splits by whole books", () => {
    const pairs = versePairs(sample("kjv"), sample("rv"));
    const refs = pairs.map((p) => `${p.book} ${p.chapter}:${p.verse}`);
    assert.ok(!refs.includes("Job 38:39"), "empty in the Reina-Valera");
    assert.deepEqual(pairs[0], {
      book: "Genesis",
      chapter: 1,
      verse: 1,
      en: "In the beginning God created the heaven and the earth.",
      es: "EN el principio crió Dios los cielos y la tierra.",
    });
    const s = splitByBooks(pairs);
    assert.deepEqual(
      s.test.map((p) => p.book),
      ["Ruth"],
    );
    assert.deepEqual(
      s.valid.map((p) => p.book),
      ["Jude"],
    );
    assert.equal(s.train.length + s.valid.length + s.test.length, pairs.length);
    assert.throws(() => splitByBooks(pairs, { test: ["Genesys"], valid: [] }), /unknown book 'Genesys'/);
    assert.throws(() => versePairs("nothing", "here"), /no verses found/);
  });
});

describe("subject lines", () => {
  test("subjects lose reply prefixes and list tags; bodies lose quotes, HTML and signatures", () => {
    assert.equal(cleanSubject("Re: [SAdev] RE: Fwd:  bug 1234   fixed"), "bug 1234 fixed");
    const body = cleanBody("<p>Hello&nbsp;there</p>\n> quoted reply\nOn Mon, Bob wrote:\nsecond =\nline\n-- \nsignature");
    assert.equal(body, "Hello there\nsecond line");
    assert.equal(firstLineBaseline("\n  first \nsecond"), "first");
  });
  test("a raw mail becomes a pair; one without a subject does not", () => {
    const raw = "From: a@b\nSubject: Re: lunch\n  tomorrow?\n\nAre we still on for lunch?\n";
    assert.deepEqual(subjectPair(raw), { subject: "lunch tomorrow?", body: "Are we still on for lunch?" });
    assert.equal(subjectPair("From: a@b\n\nbody only"), null);
  });
  test("the held-out split is fixed by the checksum, about one in ten", () => {
    const ids = Array.from({ length: 2560 }, (_, i) => i.toString(16).padStart(32, "0"));
    const held = ids.filter(isHeldOut).length;
    assert.ok(held > 200 && held < 320, `${held}`);
    assert.equal(isHeldOut("ab0a"), isHeldOut("cd0a"));
  });
});
