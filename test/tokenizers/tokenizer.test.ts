// The shared parts: the type registry behind loadTokenizer and special-token options.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BaseTokenizer, CharTokenizer, jsonTypeOf, loadTokenizer, registerTokenizer } from "../../src/tokenizers/index.js";

/** A tokenizer of decimal digits, to show that new types plug in through the registry alone. */
class DigitTokenizer extends BaseTokenizer {
  static readonly type = "test-digits";
  readonly type = DigitTokenizer.type;
  protected readonly displayName = "DigitTokenizer";
  private readonly extra: string[] = [];

  get vocabSize(): number {
    return 10 + this.extra.length;
  }
  protected encodeOrdinary(text: string, out: number[]): void {
    for (const ch of text) out.push(Number(ch));
  }
  decode(ids: ArrayLike<number>): string {
    return Array.from(ids, (id) => (id < 10 ? String(id) : (this.extra[id - 10] as string))).join("");
  }
  protected storeSpecialToken(content: string): void {
    this.extra.push(content);
  }
  toJSON(): object {
    return { type: DigitTokenizer.type, specials: this.extra };
  }
  static fromJSON(json: unknown): DigitTokenizer {
    const tok = new DigitTokenizer();
    tok.addSpecialTokens((json as { specials: string[] }).specials);
    return tok;
  }
}

describe("tokenizer registry", () => {
  it("loads a registered custom type", () => {
    registerTokenizer(DigitTokenizer);
    const tok = new DigitTokenizer();
    tok.addSpecialTokens(["<sep>"]);
    const loaded = loadTokenizer(tok.toJSON());
    assert.ok(loaded instanceof DigitTokenizer);
    assert.deepEqual(loaded.encode("12<sep>3", { allowedSpecial: ["<sep>"] }), [1, 2, 10, 3]);
  });

  it("refuses to register a second class under a taken type", () => {
    class Impostor extends DigitTokenizer {}
    assert.throws(() => registerTokenizer(Impostor), /already registered/);
  });

  it("explains unknown or missing types", () => {
    assert.throws(
      () => loadTokenizer({ type: "wordpiece" }),
      /no tokenizer is registered for type "wordpiece" \(registered: .*"BPE".*"char"/,
    );
    assert.throws(() => loadTokenizer({ vocab: {} }), /no "type"/);
  });

  it("reads the type from the top level or from a Hugging Face model", () => {
    assert.equal(jsonTypeOf({ type: "char" }), "char");
    assert.equal(jsonTypeOf({ model: { type: "BPE" } }), "BPE");
    assert.equal(jsonTypeOf([]), undefined);
  });
});

describe("special-token options", () => {
  const tok = CharTokenizer.fromText("abc<|>x", { specialTokens: ["<|a|>", "<|a|>x"] });
  const [a, ax] = [tok.specialTokens.get("<|a|>"), tok.specialTokens.get("<|a|>x")];

  it("prefers the longest special token", () => {
    assert.deepEqual(tok.encode("<|a|>x<|a|>", { allowedSpecial: "all" }), [ax, a]);
  });

  it("allows a subset and still rejects the others by default", () => {
    assert.deepEqual(tok.encode("b<|a|>", { allowedSpecial: ["<|a|>"] }), [tok.encode("b")[0], a]);
    assert.throws(() => tok.encode("<|a|>x", { allowedSpecial: ["<|a|>"] }), /"<\|a\|>x"/);
  });

  it("names an unknown token in allowedSpecial", () => {
    assert.throws(() => tok.encode("a", { allowedSpecial: ["<|b|>"] }), /"<\|b\|>", which is not a special token.*addSpecialTokens/);
  });

  it("rejects empty special tokens", () => {
    assert.throws(() => tok.addSpecialTokens([""]), /non-empty/);
  });

  it("rejects non-string input with a clear message", () => {
    assert.throws(() => tok.encode(undefined as unknown as string), /expected a string, got undefined/);
  });
});
