// Pipelines in the style of transformers.js: `await pipeline(task, modelDir)` gives a function that
// takes text and returns what transformers.js returns for the task.
//
//   const classify = await pipeline("sentiment-analysis", "runs/sst2");
//   await classify("a delightful film")      // [{ label: "POSITIVE", score: 0.98 }]
//
//   text-classification  (alias sentiment-analysis)  [{label, score}] (topk of them; one per text for arrays)
//   token-classification (alias ner)                 [{entity, score, index, word, start, end}] per word,
//                                                    O words left out; aggregation_strategy "simple"
//                                                    gives [{entity_group, score, word, start, end}]
//   question-answering                               {answer, score, start, end} (an array with topk > 1)
//   fill-mask                                        [{score, token, token_str, sequence}] (topk, default 5)
//   feature-extraction                               a Tensor: (B, T, H), or (B, H) with pooling "mean" / "cls"
//   text-generation                                  [{generated_text}] (prompt included), from a GPT directory
//   translation                                      [{translation_text}] per text, from a Marian directory
//   summarization                                    [{summary_text}] per text, from a Marian directory
//
// Tasks are looked up in SUPPORTED_TASKS, a Map from task name to pipeline class; registerPipeline
// adds one. BERT pipelines load the directory for their own task (a classifier for
// text-classification, ...); feature-extraction takes any BERT directory's encoder.

import { bestAnswer, qaFeatures } from "../data/squad.js";
import { generate } from "../generate/index.js";
import { generateTexts, type Seq2SeqGenerateOptions } from "../generate/seq2seq.js";
import { loadBert } from "../io/bert.js";
import { loadModel } from "../io/checkpoint.js";
import { loadMarian, MarianFileError } from "../io/marian.js";
import type { Bert, BertTask } from "../models/bert.js";
import type { GPT } from "../models/gpt.js";
import type { MarianMTModel } from "../models/marian.js";
import { noGrad } from "../tensor/autograd.js";
import { Tensor } from "../tensor/tensor.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { WordPieceTokenizer } from "../tokenizers/wordpiece.js";
import { classifyTexts, collate } from "../train/finetune.js";
import { embedTexts, type Pooling } from "./embeddings.js";

export { cosineSimilarity, embedTexts, type Neighbour, type Pooling, sentenceEmbeddings, WordVectors } from "./embeddings.js";

/** Errors a pipeline raises about its use (not about the model files). */
export class PipelineError extends Error {}

abstract class BertPipeline {
  static readonly bertTask: BertTask;
  constructor(
    readonly task: string,
    readonly model: Bert,
    readonly tokenizer: WordPieceTokenizer,
    readonly labels: string[] | null,
  ) {}
  abstract run(...args: unknown[]): unknown;
  protected get maxLength(): number {
    return this.model.config.max_position_embeddings;
  }
}

export interface ClassificationOutput {
  label: string;
  score: number;
}

export class TextClassificationPipeline extends BertPipeline {
  static override readonly bertTask: BertTask = "text-classification";
  run(texts: string | string[], opts: { topk?: number } = {}): ClassificationOutput[] | ClassificationOutput[][] {
    const list = Array.isArray(texts) ? texts : [texts];
    const labels = this.labels ?? Array.from({ length: this.model.numLabels }, (_, i) => `LABEL_${i}`);
    const k = Math.min(opts.topk ?? 1, labels.length);
    const probs = classifyTexts(this.model, this.tokenizer, list, { maxLength: this.maxLength });
    const tops = probs.map((p) =>
      [...p]
        .map((score, i) => ({ label: labels[i] as string, score }))
        .sort((a, b) => b.score - a.score)
        .slice(0, k),
    );
    if (!Array.isArray(texts)) return tops[0] as ClassificationOutput[];
    return k === 1 ? tops.map((t) => t[0] as ClassificationOutput) : tops;
  }
}

export interface TokenOutput {
  entity: string;
  score: number;
  /** Position of the word's first piece in the model input ([CLS] is 0). */
  index: number;
  word: string;
  start: number;
  end: number;
}

export interface EntityGroup {
  entity_group: string;
  score: number;
  word: string;
  start: number;
  end: number;
}

export class TokenClassificationPipeline extends BertPipeline {
  static override readonly bertTask: BertTask = "token-classification";
  /** One text -> its labelled words (the label of each word's first piece, as the model was trained). */
  run(text: string, opts: { ignore_labels?: string[]; aggregation_strategy?: "none" | "simple" } = {}): TokenOutput[] | EntityGroup[] {
    if (typeof text !== "string") throw new PipelineError("token-classification: give one text (a string)");
    const labels = this.labels ?? Array.from({ length: this.model.numLabels }, (_, i) => `LABEL_${i}`);
    const { ids, offsets } = this.tokenizer.encodeWithOffsets(text, { disallowedSpecial: [] });
    const prefix = this.tokenizer.continuingSubwordPrefix;
    // Words: runs of pieces, a new word at every piece that does not continue one.
    const words: { first: number; start: number; end: number }[] = [];
    ids.forEach((id, i) => {
      const tok = this.tokenizer.idToToken(id) ?? "";
      const [s, e] = offsets[i] as [number, number];
      const last = words[words.length - 1];
      if (last && prefix && tok.startsWith(prefix) && i > 0) last.end = e;
      else words.push({ first: i, start: s, end: e });
    });
    const cls = this.tokenizer.tokenToId(this.tokenizer.clsToken) as number;
    const sep = this.tokenizer.tokenToId(this.tokenizer.sepToken) as number;
    const n = Math.min(ids.length, this.maxLength - 2);
    const input = [cls, ...ids.slice(0, n), sep];
    const L = this.model.numLabels;
    const probs = noGrad(() => {
      const logits = this.model.forward({ inputIds: new Tensor(Int32Array.from(input), [1, input.length]) }).logits;
      return logits.softmax(-1).contiguousData() as Float32Array;
    });
    const ignore = new Set(opts.ignore_labels ?? ["O"]);
    const out: TokenOutput[] = [];
    for (const w of words) {
      if (w.first >= n) break;
      const base = (w.first + 1) * L;
      let best = 0;
      for (let c = 1; c < L; c++) if ((probs[base + c] as number) > (probs[base + best] as number)) best = c;
      const entity = labels[best] as string;
      out.push({
        entity,
        score: probs[base + best] as number,
        index: w.first + 1,
        word: text.slice(w.start, w.end),
        start: w.start,
        end: w.end,
      });
    }
    if (opts.aggregation_strategy === "simple") return groupEntities(out, text);
    return out.filter((t) => !ignore.has(t.entity));
  }
}

/** Hugging Face's "simple" aggregation: consecutive B-X I-X ... words become one X entity (mean score). */
export function groupEntities(tokens: readonly TokenOutput[], text: string): EntityGroup[] {
  const groups: (EntityGroup & { n: number })[] = [];
  for (const t of tokens) {
    const [bio, type] = t.entity === "O" ? ["O", ""] : [t.entity.slice(0, 1), t.entity.slice(2)];
    if (bio === "O") continue;
    const last = groups[groups.length - 1];
    if (last && bio === "I" && last.entity_group === type && last.end <= t.start) {
      last.end = t.end;
      last.score += t.score;
      last.n++;
      last.word = text.slice(last.start, last.end);
    } else {
      groups.push({ entity_group: type, score: t.score, word: t.word, start: t.start, end: t.end, n: 1 });
    }
  }
  return groups.map(({ n, ...g }) => ({ ...g, score: g.score / n }));
}

export interface AnswerOutput {
  answer: string;
  score: number;
  start: number;
  end: number;
}

export class QuestionAnsweringPipeline extends BertPipeline {
  static override readonly bertTask: BertTask = "question-answering";
  run(question: string, context: string, opts: { max_answer_len?: number; doc_stride?: number; max_seq_len?: number } = {}): AnswerOutput {
    if (typeof question !== "string" || typeof context !== "string")
      throw new PipelineError("question-answering: give a question and a context (two strings)");
    const maxLength = Math.min(opts.max_seq_len ?? 384, this.maxLength);
    const feats = qaFeatures(this.tokenizer, [{ id: "q", question, context, answers: [] }], {
      maxLength,
      docStride: opts.doc_stride ?? 128,
    });
    const pad = this.tokenizer.tokenToId(this.tokenizer.padToken) as number;
    const windows = noGrad(() =>
      feats.map((f) => {
        const n = f.attentionMask.reduce((a, b) => a + b, 0);
        const b = collate([{ inputIds: f.inputIds.slice(0, n), tokenTypeIds: f.tokenTypeIds.slice(0, n), target: 0 }], pad, maxLength);
        const l = this.model.forward(b.inputs).logits.contiguousData() as Float32Array;
        const start = new Float32Array(n);
        const end = new Float32Array(n);
        for (let t = 0; t < n; t++) {
          start[t] = l[2 * t] as number;
          end[t] = l[2 * t + 1] as number;
        }
        return { offsets: f.offsets.slice(0, n), start, end };
      }),
    );
    const best = bestAnswer(context, windows, { maxAnswerLength: opts.max_answer_len ?? 15 });
    return { answer: best.text, score: best.score, start: best.start, end: best.end };
  }
}

export interface FillMaskOutput {
  score: number;
  token: number;
  token_str: string;
  sequence: string;
}

export class FillMaskPipeline extends BertPipeline {
  static override readonly bertTask: BertTask = "fill-mask";
  /** Text with one [MASK] -> the topk fillings; with several masks, one list per mask. */
  run(text: string, opts: { topk?: number } = {}): FillMaskOutput[] | FillMaskOutput[][] {
    const mask = this.tokenizer.maskToken;
    const maskId = this.tokenizer.tokenToId(mask) as number;
    const enc = this.tokenizer.encodePair(text, null, { allowedSpecial: [mask], maxLength: this.maxLength });
    const positions = enc.inputIds.map((id, i) => (id === maskId ? i : -1)).filter((i) => i >= 0);
    if (positions.length === 0) throw new PipelineError(`fill-mask: the text has no ${mask} token to fill`);
    const k = opts.topk ?? 5;
    const V = this.model.config.vocab_size;
    const probs = noGrad(() => {
      const ids = new Tensor(Int32Array.from(enc.inputIds), [1, enc.inputIds.length]);
      const pos = new Tensor(Int32Array.from(positions), [positions.length]);
      return this.model.forward({ inputIds: ids }, { positions: pos }).logits.softmax(-1).contiguousData() as Float32Array;
    });
    const specials = new Set(this.tokenizer.specialTokens.values());
    const results = positions.map((pos, m) => {
      const row = probs.subarray(m * V, (m + 1) * V);
      const order = Array.from({ length: Math.min(V, this.tokenizer.vocabSize) }, (_, i) => i)
        .filter((i) => !specials.has(i))
        .sort((a, b) => (row[b] as number) - (row[a] as number))
        .slice(0, k);
      return order.map((id) => {
        const filled = [...enc.inputIds];
        filled[pos] = id;
        return { score: row[id] as number, token: id, token_str: this.tokenizer.decode([id]), sequence: this.tokenizer.decode(filled) };
      });
    });
    return results.length === 1 ? (results[0] as FillMaskOutput[]) : results;
  }
}

export class FeatureExtractionPipeline extends BertPipeline {
  static override readonly bertTask: BertTask = "feature-extraction";
  run(texts: string | string[], opts: { pooling?: Pooling; normalize?: boolean } = {}): Tensor {
    return embedTexts(this.model, this.tokenizer, Array.isArray(texts) ? texts : [texts], {
      pooling: opts.pooling ?? "none",
      normalize: opts.normalize,
    });
  }
}

export class TextGenerationPipeline {
  static readonly bertTask = null;
  constructor(
    readonly task: string,
    readonly model: GPT,
    readonly tokenizer: Tokenizer,
  ) {}
  run(
    prompt: string,
    opts: { max_new_tokens?: number; temperature?: number; do_sample?: boolean; top_k?: number; top_p?: number; seed?: number } = {},
  ): { generated_text: string }[] {
    const sample = opts.do_sample ?? false;
    const text = generate(this.model, this.tokenizer, prompt, {
      maxNewTokens: opts.max_new_tokens ?? 50,
      temperature: sample ? (opts.temperature ?? 1) : 0,
      topK: opts.top_k ?? 0,
      topP: opts.top_p ?? 1,
      seed: opts.seed ?? 1,
    });
    return [{ generated_text: prompt + text }];
  }
}

/** Hugging Face's generate() keyword arguments, as transformers.js's pipelines take them. */
export interface Text2TextOptions {
  max_new_tokens?: number;
  max_length?: number;
  num_beams?: number;
  length_penalty?: number;
  early_stopping?: boolean | "never";
  no_repeat_ngram_size?: number;
  repetition_penalty?: number;
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  seed?: number;
}

function generateOptions(o: Text2TextOptions): Seq2SeqGenerateOptions {
  return {
    maxNewTokens: o.max_new_tokens,
    maxLength: o.max_length,
    numBeams: o.num_beams ?? (o.do_sample ? 1 : undefined),
    lengthPenalty: o.length_penalty,
    earlyStopping: o.early_stopping,
    noRepeatNgramSize: o.no_repeat_ngram_size,
    repetitionPenalty: o.repetition_penalty,
    doSample: o.do_sample,
    temperature: o.temperature,
    topK: o.top_k,
    topP: o.top_p,
    seed: o.seed,
  };
}

/** Encoder-decoder pipelines (translation, summarization): text in, generated text out. */
abstract class Text2TextPipeline {
  static readonly bertTask = null;
  static readonly seq2seq = true;
  protected abstract readonly key: string;
  constructor(
    readonly task: string,
    readonly model: MarianMTModel,
    readonly tokenizer: Tokenizer,
  ) {}
  protected generate(texts: string | string[], opts: Text2TextOptions): Record<string, string>[] {
    const list = Array.isArray(texts) ? texts : [texts];
    if (list.some((t) => typeof t !== "string")) throw new PipelineError(`${this.task}: give a text or an array of texts`);
    return generateTexts(this.model, this.tokenizer, list, generateOptions(opts)).map((t) => ({ [this.key]: t }));
  }
}

export class TranslationPipeline extends Text2TextPipeline {
  protected readonly key = "translation_text";
  run(texts: string | string[], opts: Text2TextOptions = {}): { translation_text: string }[] {
    return this.generate(texts, opts) as { translation_text: string }[];
  }
}

export class SummarizationPipeline extends Text2TextPipeline {
  protected readonly key = "summary_text";
  run(texts: string | string[], opts: Text2TextOptions = {}): { summary_text: string }[] {
    return this.generate(texts, opts) as { summary_text: string }[];
  }
}

type PipelineClass =
  | typeof TextClassificationPipeline
  | typeof TokenClassificationPipeline
  | typeof QuestionAnsweringPipeline
  | typeof FillMaskPipeline
  | typeof FeatureExtractionPipeline
  | typeof TextGenerationPipeline
  | typeof TranslationPipeline
  | typeof SummarizationPipeline;

/** Task name -> pipeline class (aliases included), as transformers.js's SUPPORTED_TASKS. */
export const SUPPORTED_TASKS = new Map<string, PipelineClass>([
  ["text-classification", TextClassificationPipeline],
  ["sentiment-analysis", TextClassificationPipeline],
  ["token-classification", TokenClassificationPipeline],
  ["ner", TokenClassificationPipeline],
  ["question-answering", QuestionAnsweringPipeline],
  ["fill-mask", FillMaskPipeline],
  ["feature-extraction", FeatureExtractionPipeline],
  ["text-generation", TextGenerationPipeline],
  ["translation", TranslationPipeline],
  ["summarization", SummarizationPipeline],
]);

export function registerPipeline(task: string, cls: PipelineClass): void {
  SUPPORTED_TASKS.set(task, cls);
}

/** A pipeline: call it with the task's inputs. */
export type Pipeline<P extends { run: (...a: never[]) => unknown }> = P["run"] & { task: string; instance: P };

type Instance<C extends PipelineClass> = InstanceType<C>;

/** Load `modelDir` for `task` and return the pipeline function (see the file comment). */
export async function pipeline<T extends string>(
  task: T,
  modelDir: string,
): Promise<
  T extends "text-classification" | "sentiment-analysis"
    ? Pipeline<TextClassificationPipeline>
    : T extends "token-classification" | "ner"
      ? Pipeline<TokenClassificationPipeline>
      : T extends "question-answering"
        ? Pipeline<QuestionAnsweringPipeline>
        : T extends "fill-mask"
          ? Pipeline<FillMaskPipeline>
          : T extends "feature-extraction"
            ? Pipeline<FeatureExtractionPipeline>
            : T extends "text-generation"
              ? Pipeline<TextGenerationPipeline>
              : T extends "translation"
                ? Pipeline<TranslationPipeline>
                : T extends "summarization"
                  ? Pipeline<SummarizationPipeline>
                  : Pipeline<Instance<PipelineClass>>
> {
  const cls = SUPPORTED_TASKS.get(task);
  if (!cls) throw new PipelineError(`unknown task '${task}'; supported: ${[...SUPPORTED_TASKS.keys()].join(", ")}`);
  let instance: Instance<PipelineClass>;
  if (cls === TextGenerationPipeline) {
    const { model, tokenizer } = loadModel(modelDir);
    instance = new TextGenerationPipeline(task, model, tokenizer);
  } else if (cls === TranslationPipeline || cls === SummarizationPipeline) {
    let loaded: ReturnType<typeof loadMarian>;
    try {
      loaded = loadMarian(modelDir);
    } catch (e) {
      if (!(e instanceof MarianFileError)) throw e;
      throw new PipelineError(`${task}: ${e.message}; this pipeline needs an encoder-decoder (make one with moxing train-seq2seq)`);
    }
    const { model, tokenizer } = loaded;
    if (!tokenizer) throw new PipelineError(`${task}: '${modelDir}' has no tokenizer.json (make one with moxing train-seq2seq)`);
    instance = new cls(task, model, tokenizer);
  } else {
    const bertTask = (cls as typeof TextClassificationPipeline).bertTask;
    const loaded = loadBert(modelDir, bertTask === "feature-extraction" ? { task: "feature-extraction" } : {});
    if (loaded.model.task !== bertTask) {
      const how = bertTask === "fill-mask" ? "moxing pretrain-mlm" : `moxing finetune --task ${bertTask} --model ${modelDir}`;
      throw new PipelineError(
        `${task}: the model in '${modelDir}' is a ${loaded.model.task} model; this pipeline needs a ${bertTask} model (make one with ${how})`,
      );
    }
    instance = new (cls as typeof TextClassificationPipeline)(task, loaded.model, loaded.tokenizer, loaded.info.labels);
  }
  const fn = ((...args: unknown[]) => (instance.run as (...a: unknown[]) => unknown).apply(instance, args)) as unknown as Pipeline<
    typeof instance
  >;
  return Object.assign(fn, { task, instance }) as never;
}
