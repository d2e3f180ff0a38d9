// Constrained JSON decoding: every text the grammar lets through, byte by byte or token by token and
// within any budget it accepts, parses and validates against its schema (checked with Ajv); valid
// instances are accepted, invalid prefixes refused, and unsupported keywords refused by name.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Ajv } from "ajv";
import {
  compileSchema,
  END,
  type Grammar,
  JsonConstraint,
  SchemaError,
  type Stack,
  TokenTrie,
  vocabBytes,
} from "../../src/serve/json-schema.js";
import { Generator } from "../../src/tensor/random.js";
import { ByteLevelBPE, CharTokenizer } from "../../src/tokenizers/index.js";

const SCHEMAS: Record<string, object> = {
  person: {
    type: "object",
    properties: {
      name: { type: "string", minLength: 1, maxLength: 12 },
      age: { type: "integer" },
      email: { type: ["string", "null"] },
      tags: { type: "array", items: { type: "string", maxLength: 4 }, maxItems: 3 },
      role: { enum: ["admin", "user", 7, null] },
    },
    required: ["name", "age", "role"],
    additionalProperties: false,
  },
  nested: {
    type: "object",
    properties: {
      points: {
        type: "array",
        items: { type: "object", properties: { x: { type: "number" }, y: { type: "number" } }, required: ["x", "y"] },
        minItems: 2,
        maxItems: 4,
      },
      ok: { type: "boolean" },
      'clé "ü"': { const: "fixed" },
    },
    required: ["points", 'clé "ü"'],
  },
  tree: {
    $ref: "#/$defs/node",
    $defs: {
      node: {
        type: "object",
        properties: { value: { type: "integer" }, children: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } },
        required: ["value"],
      },
    },
  },
  union: {
    anyOf: [
      { type: "number" },
      { type: "object", properties: { a: { type: "string" } }, required: ["a"] },
      { type: "array", items: { type: "integer" } },
    ],
  },
  free: { type: "object" },
  anything: {},
};

const ajv = new Ajv({ strict: false });
const utf8 = new TextDecoder("utf-8", { fatal: false });
const bytesToText = (bytes: string) => utf8.decode(Uint8Array.from(bytes, (c) => c.charCodeAt(0)));
const textToBytes = (text: string) => String.fromCharCode(...new TextEncoder().encode(text));

function feedAll(g: Grammar, states: Stack[], bytes: string): Stack[] {
  for (let i = 0; i < bytes.length && states.length; i++) {
    const b = bytes.charCodeAt(i);
    states = states.flatMap((s) => g.feed(s, b));
  }
  return states;
}
const accepts = (g: Grammar, text: string) => feedAll(g, [g.start()], textToBytes(text)).some((s) => g.canEnd(s));
const minFinish = (g: Grammar, states: Stack[]) => Math.min(...states.map((s) => g.finish(s).length));

/** A random walk over bytes that keeps to the budget the way the token mask does. */
function randomText(g: Grammar, rng: Generator, budget: number): string {
  // Printable ASCII, the bytes of "éü猫😀" (so multi-byte characters occur inside strings and keys)
  // and a few bytes that are never well-formed UTF-8 where they would appear.
  const alphabet = [...Array.from({ length: 95 }, (_, i) => 32 + i), ...new TextEncoder().encode("éü猫😀"), 0x80, 0xc0, 0xed, 0xf5, 0xff];
  let states = [g.start()];
  let out = "";
  for (let left = budget; left > 0; left--) {
    const ends = states.some((s) => g.canEnd(s));
    if (ends && rng.random() < 0.15) break;
    const options = alphabet.filter((b) => {
      const next = states.flatMap((s) => g.feed(s, b));
      return next.length > 0 && minFinish(g, next) <= left - 1;
    });
    if (options.length === 0) {
      assert.ok(ends, `stuck after ${JSON.stringify(out)} with ${left} bytes left and no way to end`);
      break;
    }
    const b = options[Math.floor(rng.random() * options.length)] as number;
    states = states.flatMap((s) => g.feed(s, b));
    out += String.fromCharCode(b);
  }
  assert.ok(
    states.some((s) => g.canEnd(s)),
    `the budget ran out before the text could end: ${JSON.stringify(out)}`,
  );
  return out;
}

describe("json_schema grammar", () => {
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    test(`${name}: random texts within random budgets parse and validate`, () => {
      const g = compileSchema(schema);
      const validate = ajv.compile(schema);
      const rng = new Generator(name.length);
      const least = minFinish(g, [g.start()]);
      for (let i = 0; i < 25; i++) {
        const bytes = randomText(g, rng, least + Math.floor(rng.random() * 80));
        const text = bytesToText(bytes);
        let value: unknown;
        assert.doesNotThrow(() => {
          value = JSON.parse(text);
        }, `not JSON: ${text}`);
        assert.ok(validate(value), `${text} does not validate: ${ajv.errorsText(validate.errors)}`);
      }
    });
  }

  test("the shortest completion completes, and each of its bytes shortens it by one", () => {
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const g = compileSchema(schema);
      const rng = new Generator(7);
      for (let i = 0; i < 10; i++) {
        const full = randomText(g, rng, 150);
        const cut = full.slice(0, Math.floor(rng.random() * full.length));
        let states = feedAll(g, [g.start()], cut);
        let finish = states.map((s) => g.finish(s)).reduce((a, b) => (b.length < a.length ? b : a));
        const text = bytesToText(cut + finish);
        assert.ok(ajv.validate(schema, JSON.parse(text)), `${name}: ${text}`);
        while (finish.length > 0) {
          states = states.flatMap((s) => g.feed(s, finish.charCodeAt(0)));
          const next = minFinish(g, states);
          assert.ok(next <= finish.length - 1, `${name}: after ${JSON.stringify(cut)} the completion did not shrink`);
          finish = finish.slice(1);
        }
        assert.ok(states.some((s) => g.canEnd(s)));
        assert.ok(
          states.every((s) => g.feed(s, END).length > 0 || s.f.k !== "root"),
          "END is accepted",
        );
      }
    }
  });

  test("valid instances are accepted, with or without a space after ':' and ','", () => {
    const g = compileSchema(SCHEMAS.person as object);
    assert.ok(accepts(g, '{"name":"Ann","age":31,"role":"admin"}'));
    assert.ok(accepts(g, '{"name": "Ann", "age": -4, "email": null, "tags": ["a", "bc"], "role": 7}'));
    assert.ok(accepts(g, '{"name":"\\u00e9\\n","age":0,"role":null}'));
    const tree = compileSchema(SCHEMAS.tree as object);
    assert.ok(accepts(tree, '{"value":1,"children":[{"value":2},{"value":3,"children":[]}]}'));
    const any = compileSchema({});
    for (const v of ['{"a":[1,2.5e3,{"b":null}],"c":"x"}', "true", "-0.25", '"猫"', "[]"]) assert.ok(accepts(any, v), v);
  });

  test("invalid texts are refused", () => {
    const g = compileSchema(SCHEMAS.person as object);
    for (const bad of [
      '{"age":3,"name":"x","role":"user"}', // out of the schema's order: refused (a stricter subset)
      '{"name":"x","role":"user"}', // a required property missing
      '{"name":"","age":1,"role":"user"}', // minLength 1
      '{"name":"x","age":1.5,"role":"user"}', // not an integer
      '{"name":"x","age":01,"role":"user"}', // leading zero
      '{"name":"x","age":1,"role":"boss"}', // not in the enum
      '{"name":"x","age":1,"role":"user","extra":1}', // additionalProperties false
      '{"name":"x\ty","age":1,"role":"user"}', // a raw control character in a string
      '{"name":"x","age":1,"role":"user"} ', // anything after the value
      '{"name":"x","age":1,"tags":["a","b","c","d"],"role":"user"}', // maxItems 3
    ]) {
      assert.ok(!accepts(g, bad), bad);
    }
  });

  test("unsupported or contradictory schemas are refused by name", () => {
    assert.throws(
      () => compileSchema({ type: "string", pattern: "^a" }),
      (e: Error) => e instanceof SchemaError && /'pattern'.*not supported/.test(e.message),
    );
    assert.throws(
      () => compileSchema({ type: "object", properties: { a: { type: "number", minimum: 0 } } }),
      /#\/properties\/a: the keyword 'minimum'/,
    );
    assert.throws(
      () => compileSchema({ type: "object", required: ["b"], properties: { a: {} } }),
      /required property 'b' is not in properties/,
    );
    assert.throws(
      () =>
        compileSchema({ $ref: "#/$defs/x", $defs: { x: { type: "object", properties: { y: { $ref: "#/$defs/x" } }, required: ["y"] } } }),
      /no finite instance/,
    );
    assert.throws(() => compileSchema({ type: "strnig" }), /unknown type "strnig"/);
    assert.throws(() => compileSchema({ type: "string", minLength: 5, maxLength: 2 }), /minLength 5 is above maxLength 2/);
    assert.throws(() => compileSchema("object"), /must be a JSON schema object/);
  });
});

describe("json_schema over a tokenizer's vocabulary", () => {
  // Multi-character tokens too: the char tokenizer's characters and some ids that decode to several bytes.
  const tok = CharTokenizer.fromText(' !"#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~éü猫');
  tok.addSpecialTokens(["<|im_end|>"]);
  const trie = new TokenTrie(vocabBytes(tok));

  test("the special token has no bytes and is never allowed by the mask", () => {
    const c = new JsonConstraint(compileSchema({}), trie);
    const mask = new Uint8Array(tok.vocabSize);
    assert.ok(c.allowed(mask, 100) > 0);
    assert.equal(mask[tok.specialTokens.get("<|im_end|>") as number], 0);
  });

  test("sampling among allowed tokens with random logits always ends in valid JSON within max tokens", () => {
    const rng = new Generator(3);
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const grammar = compileSchema(schema);
      const validate = ajv.compile(schema);
      const least = grammar.finish(grammar.start()).length;
      for (let i = 0; i < 15; i++) {
        const maxTokens = least + Math.floor(rng.random() * 40);
        const c = new JsonConstraint(grammar, trie);
        const mask = new Uint8Array(tok.vocabSize);
        const ids: number[] = [];
        for (let step = 0; step < maxTokens; step++) {
          if (c.canEnd() && rng.random() < 0.1) break;
          if (c.allowed(mask, maxTokens - step) === 0) break;
          const allowedIds = [...mask.keys()].filter((id) => mask[id]);
          const id = allowedIds[Math.floor(rng.random() * allowedIds.length)] as number;
          c.advance(id);
          ids.push(id);
        }
        assert.ok(c.canEnd(), `${name}: ${tok.decode(ids)} cannot end`);
        const text = tok.decode(ids);
        assert.ok(validate(JSON.parse(text)), `${name}: ${text}`);
        assert.ok(ids.length <= maxTokens);
      }
    }
  });

  test("with a byte-level BPE, the mask is exactly the tokens whose bytes keep the JSON valid within the budget", () => {
    // Merged tokens span quotes, escapes and parts of characters: the plain-text shortcut inside
    // strings and the trie walk must together give what feeding every token byte by byte gives.
    const corpus = 'say {"name": "猫 and 狗 \\"quoted\\"", "age": 42, "tags": ["a b", "汉堡"]} and more plain words. '.repeat(30);
    const bpe = ByteLevelBPE.train(corpus, { vocabSize: 420, specialTokens: ["<|endoftext|>"] });
    const bpeTrie = new TokenTrie(vocabBytes(bpe));
    const schema = SCHEMAS.person as object;
    const grammar = compileSchema(schema);
    const rng = new Generator(11);
    const mask = new Uint8Array(bpe.vocabSize);
    for (let walk = 0; walk < 6; walk++) {
      const c = new JsonConstraint(grammar, bpeTrie);
      const maxTokens = 30 + walk * 10;
      for (let step = 0; step < maxTokens && !c.complete(); step++) {
        const remaining = maxTokens - step;
        c.allowed(mask, remaining);
        const want = bpeTrie.bytes.map((t) => {
          if (!t) return 0;
          const states = feedAll(grammar, (c as unknown as { states: Stack[] }).states, t);
          return states.length > 0 && minFinish(grammar, states) <= remaining - 1 ? 1 : 0;
        });
        assert.deepEqual([...mask], want, `walk ${walk} step ${step}`);
        const ids = [...mask.keys()].filter((id) => mask[id]);
        if (ids.length === 0) break;
        c.advance(ids[Math.floor(rng.random() * ids.length)] as number);
      }
    }
  });

  test("a token that breaks the JSON is refused by advance", () => {
    const c = new JsonConstraint(compileSchema({ type: "object" }), trie);
    assert.throws(() => c.advance(tok.encode("a")[0] as number), /does not continue the JSON/);
  });
});
