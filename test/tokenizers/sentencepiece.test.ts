// SentencePiece unigram models and Marian's tokenizer, checked against the reference implementations
// on the files tools/marian_spm.py writes: pieces, ids and decoded text as Debian's python3-sentencepiece
// (0.1.97) gives them, and input ids, labels and decoded text as transformers' MarianTokenizer (v4.31)
// gives them; a Hub-layout Marian directory (source.spm, target.spm, vocab.json) loads and translates;
// damaged model files are refused with the reason.

import "../../src/index.js";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { commitFiles } from "../../src/io/checkpoint.js";
import { loadMarian, marianModelFiles } from "../../src/io/marian.js";
import { MarianMTModel } from "../../src/models/marian.js";
import { MarianTokenizer } from "../../src/tokenizers/marian.js";
import { parseSentencePieceModel, SentencePieceUnigram } from "../../src/tokenizers/sentencepiece.js";
import { loadTokenizer } from "../../src/tokenizers/tokenizer.js";
import { assertOneLineError, moxing } from "../cli-run.js";

const dir = new URL("../../tools/fixtures/marian-spm/", import.meta.url).pathname;
const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as {
  spm: Record<"source" | "target", { text: string; pieces: string[]; ids: number[]; decoded: string }[]>;
  marian: { text: string; input_ids: number[]; labels: number[]; decoded_labels: string; decoded_source: string }[];
};
const tmp = mkdtempSync(join(tmpdir(), "spm-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("SentencePiece unigram models", () => {
  for (const side of ["source", "target"] as const) {
    test(`${side}.spm: pieces, ids and decoding equal sentencepiece's`, () => {
      const sp = SentencePieceUnigram.fromFile(join(dir, `${side}.spm`));
      assert.equal(sp.proto.normalizer.name, "nmt_nfkc");
      assert.ok(sp.proto.normalizer.charsmap, "the precompiled character map is read");
      for (const r of expected.spm[side]) {
        assert.deepEqual(sp.encodeAsPieces(r.text), r.pieces, JSON.stringify(r.text));
        assert.deepEqual(sp.encodeAsIds(r.text), r.ids, JSON.stringify(r.text));
        assert.equal(sp.decodeIds(r.ids), r.decoded, JSON.stringify(r.text));
      }
    });
  }

  test("damaged or unsupported model files are refused with the reason", () => {
    const bytes = new Uint8Array(readFileSync(join(dir, "source.spm")));
    assert.throws(() => parseSentencePieceModel(bytes.subarray(0, 1000)), /claims \d+ bytes but \d+ remain|ends inside/);
    assert.throws(() => parseSentencePieceModel(Uint8Array.of(0x0f)), /unsupported protobuf wire type 7/);
    // trainer_spec { model_type: BPE } and one normal piece: not a unigram model.
    const bpe = Uint8Array.of(0x0a, 0x05, 0x0a, 0x01, 0x61, 0x18, 0x02, 0x12, 0x02, 0x18, 0x02);
    assert.throws(() => new SentencePieceUnigram(parseSentencePieceModel(bpe)), /a BPE model; moxing reads SentencePiece unigram models/);
    const noUnk = Uint8Array.of(0x0a, 0x03, 0x0a, 0x01, 0x61);
    assert.throws(() => new SentencePieceUnigram(parseSentencePieceModel(noUnk)), /no <unk> piece/);
    const notFile = join(tmp, "garbage.spm");
    writeFileSync(notFile, "hello world, not a model");
    assert.throws(() => SentencePieceUnigram.fromFile(notFile), new RegExp(notFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  });
});

describe("MarianTokenizer", () => {
  const tok = MarianTokenizer.fromDir(dir);
  const eos = tok.specialTokens.get("</s>") as number;
  const specials = new Set(tok.specialTokens.values());
  const strip = (ids: number[]) => ids.filter((id) => !specials.has(id));

  test("input ids, labels and decoded text equal transformers' MarianTokenizer", () => {
    for (const r of expected.marian) {
      assert.deepEqual([...tok.encode(r.text, { allowedSpecial: "all" }), eos], r.input_ids, JSON.stringify(r.text));
      assert.deepEqual([...tok.encodeTarget(r.text, { allowedSpecial: "all" }), eos], r.labels, JSON.stringify(r.text));
      assert.equal(tok.decode(strip(r.labels)), r.decoded_labels, JSON.stringify(r.text));
      assert.equal(tok.decode(strip(r.input_ids), { useSource: true }), r.decoded_source, JSON.stringify(r.text));
    }
    // Without allowedSpecial, a literal </s> in user text is refused (as for every moxing tokenizer).
    assert.throws(() => tok.encode("A literal </s>"), /special token "<\/s>"/);
  });

  test("toJSON round trip; a Hub-layout directory loads, translates and saves in the same layout", async () => {
    const back = loadTokenizer(JSON.parse(JSON.stringify(tok.toJSON())));
    assert.deepEqual(back.encode("In the beginning."), tok.encode("In the beginning."));
    // A small random Marian with this vocabulary, written as the Hub has them: no tokenizer.json.
    const hub = join(tmp, "hub");
    const pad = tok.specialTokens.get("<pad>") as number;
    const model = new MarianMTModel(
      {
        vocab_size: tok.vocabSize,
        d_model: 16,
        encoder_layers: 1,
        decoder_layers: 1,
        encoder_attention_heads: 2,
        decoder_attention_heads: 2,
        encoder_ffn_dim: 32,
        decoder_ffn_dim: 32,
        max_position_embeddings: 64,
        pad_token_id: pad,
        decoder_start_token_id: pad,
        eos_token_id: eos,
        forced_eos_token_id: eos,
        max_length: 12,
      },
      { seed: 3 },
    );
    const files = marianModelFiles(model, tok);
    assert.ok(!files.has("tokenizer.json") && files.has("source.spm") && files.has("vocab.json"), [...files.keys()].join(", "));
    commitFiles(hub, files, []);
    const loaded = loadMarian(hub);
    assert.ok(loaded.tokenizer instanceof MarianTokenizer);
    assert.deepEqual(loaded.tokenizer.encode("God said."), tok.encode("God said."));
    const r = await moxing(["translate", "--model", hub, "--text", "In the beginning God created the heaven.", "--num-beams", "2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.trim().length > 0);
    // A broken vocab.json is named.
    const bad = join(tmp, "bad");
    commitFiles(bad, files, []);
    writeFileSync(join(bad, "vocab.json"), JSON.stringify({ "</s>": 0, "<unk>": 0, "<pad>": 2 }));
    assertOneLineError(await moxing(["translate", "--model", bad, "--text", "x"]), /vocab\.json: id 0 is given to two pieces/);
    copyFileSync(join(dir, "vocab.json"), join(bad, "vocab.json"));
  });
});
