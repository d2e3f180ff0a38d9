// ListOps: the values of hand-checked expressions, parsing, and the seeded generator.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { evaluateListOps, generateListOps, listOpsString, parseListOps } from "../../src/data/listops.js";

describe("ListOps", () => {
  test("evaluates the operators as make_data.py does", () => {
    const v = (s: string) => evaluateListOps(parseListOps(s));
    assert.equal(v("( ( ( [MAX 2 ) 9 ) ] )"), 9);
    assert.equal(v("( ( ( ( [MIN 4 ) 7 ) 3 ) ] )"), 3);
    assert.equal(v("( ( ( ( [SM 8 ) 7 ) 9 ) ] )"), 4); // 24 mod 10
    assert.equal(v("( ( ( [MED 1 ) 2 ) ] )"), 1); // int(1.5)
    assert.equal(v("( ( ( ( ( [MED 5 ) 1 ) 9 ) 2 ) ] )"), 3); // int(3.5)
    assert.equal(v("( ( ( [MAX 2 ) ( ( ( [MIN 4 ) 7 ) ] ) ) ] )"), 4);
    assert.equal(v("7"), 7);
    assert.throws(() => parseListOps("( ( [MAX 2 )"), /ends inside a bracket/);
    assert.throws(() => v("( ( [MAX 2 ) 3 )"), /unfinished operator/);
  });
  test("generates unique, labelled, reproducible examples", () => {
    const a = generateListOps(300, { seed: 7, maxTokens: 100 });
    const b = generateListOps(300, { seed: 7, maxTokens: 100 });
    assert.deepEqual(
      a.map((e) => e.text),
      b.map((e) => e.text),
    );
    assert.equal(new Set(a.map((e) => e.text)).size, 300);
    for (const e of a) {
      assert.equal(listOpsString(parseListOps(e.text)), e.text);
      assert.equal(evaluateListOps(parseListOps(e.text)), e.label);
    }
    const labels = new Set(a.map((e) => e.label));
    assert.equal(labels.size, 10, "every class occurs");
    assert.ok(
      a.some((e) => (e.text.match(/\[/g) ?? []).length >= 3),
      "nested operators occur",
    );
    assert.notDeepEqual(
      generateListOps(20, { seed: 8 }).map((e) => e.text),
      a.slice(0, 20).map((e) => e.text),
    );
  });
});
