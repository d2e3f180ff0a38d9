// `moxing train-han` and `moxing han-attention`: the hierarchical attention network (Yang et al. 2016)
// trained on labelled documents, and one document's word- and sentence-level attention printed.

import { readFileSync } from "node:fs";
import { sotuParty, spamDocuments } from "../data/documents.js";
import { type LabeledText, readLabeledFile } from "../data/labeled.js";
import { writeFileAtomic } from "../io/atomic.js";
import { HAN_TRAIN_DEFAULTS, type HANAttention, hanAttention, loadHAN, trainHAN } from "../train/han.js";
import type { Command } from "./util.js";
import { num, parseFlags, runWithProgress, TRAINING_RUN_FLAGS, UsageError } from "./util.js";

const D = HAN_TRAIN_DEFAULTS;

const TRAIN_HELP = `moxing train-han: train a hierarchical attention network (Yang et al. 2016) to classify documents

Usage: moxing train-han (--dataset sotu-party | --dataset spam-assassin | --train FILE [--eval FILE]) --out DIR [flags]

Words -> BiGRU -> attention -> sentence vectors -> BiGRU -> attention -> document vector -> label.
  --dataset sotu-party      State of the Union addresses by the speaker's party (gold metadata),
                            Democratic vs Republican; before 1978 train, from 1978 test (no president
                            on both sides; --test-from YEAR moves the split)
  --dataset spam-assassin   SpamAssassin mails, spam vs ham (gold), stratified 80/20
  --train FILE --eval FILE  labelled documents: .jsonl ({"text", "label"}), .tsv or .csv, as moxing
                            finetune reads them
  --out DIR                 config.json, model.safetensors, vocab.json, checkpoint, metrics.jsonl and
                            eval_results.json (held-out accuracy and macro F1)
  --resume / --overwrite
Model: --vocab-size ${D.vocabSize} (words)  --embed-dim ${D.embedDim}  --hidden-size ${D.hiddenSize} (GRU, per direction)
       --max-sentences ${D.maxSentences}  --max-words ${D.maxWords} (per sentence; longer ones are cut into pieces)
Training (AdamW, warmup then cosine decay to lr/10, clip 5):
  --batch-size ${D.batchSize} (documents)  --max-steps ${D.maxSteps}  --learning-rate ${D.learningRate}  --weight-decay ${D.weightDecay}  --seed ${D.seed}
  --eval-interval N   held-out accuracy every N steps (default min(100, max steps))

Afterwards: moxing han-attention --model DIR --file DOC.txt`;

const ATTENTION_HELP = `moxing han-attention: a document's predicted label and where the network looked

Usage: moxing han-attention --model DIR (--text TEXT | --file FILE) [--top N] [--json] [--html FILE]

Prints the label and its probability, then the --top N sentences (default 10; 0 for all) by attention
weight, each with its weight and its words, the words it attended to most marked [like this]. --json
prints everything (every sentence and word with its weight) as one JSON object; --html FILE draws the
document as Yang et al. do: each sentence's bar shaded by its weight, each word by its own.`;

function datasetSplit(c: string, name: string, testFrom: number | undefined): { train: LabeledText[]; eval: LabeledText[]; note: string } {
  if (name === "sotu-party") {
    const s = sotuParty(testFrom);
    return { train: s.train, eval: s.test, note: s.note };
  }
  if (name === "spam-assassin") {
    const s = spamDocuments();
    return { train: s.train, eval: s.test, note: s.note };
  }
  throw new UsageError(`${c}: unknown --dataset '${name}'; the built-in ones are sotu-party and spam-assassin`);
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string);

/** A self-contained page: per sentence a red bar, per word a blue background, each as strong as the
 *  square root of its weight over the document's largest (attention is peaked; the root keeps the
 *  smaller weights visible); hovering shows the weight. */
export function attentionHtml(a: HANAttention): string {
  const maxS = Math.max(...a.sentences.map((s) => s.weight));
  const maxW = Math.max(...a.sentences.flatMap((s) => s.words.map((w) => w.weight)));
  const rows = a.sentences
    .map((s) => {
      const words = s.words
        .map(
          (w) =>
            `<span style="background:rgba(40,90,220,${(Math.sqrt(w.weight / maxW) * 0.85).toFixed(3)})" title="${w.weight.toFixed(4)}">${escapeHtml(w.word)}</span>`,
        )
        .join(" ");
      return `<div class="s"><span class="bar" style="background:rgba(220,40,40,${(Math.sqrt(s.weight / maxS) * 0.9).toFixed(3)})" title="${s.weight.toFixed(4)}"></span>${words}</div>`;
    })
    .join("\n");
  const probs = Object.entries(a.probabilities)
    .map(([l, p]) => `${escapeHtml(l)} ${p.toFixed(3)}`)
    .join(", ");
  return `<!doctype html><meta charset="utf-8"><title>HAN attention: ${escapeHtml(a.label)}</title>
<style>body{font:15px/1.6 system-ui,sans-serif;max-width:60em;margin:2em auto}.s{margin:.15em 0}.bar{display:inline-block;width:1.2em;height:1em;margin-right:.6em;vertical-align:middle;border:1px solid #ccc}</style>
<h1>${escapeHtml(a.label)}</h1><p>${probs}. Red: sentence attention; blue: word attention within the sentence.</p>
${rows}
`;
}

export const trainHANCommand: Command = {
  summary: "train a hierarchical attention network (documents -> labels)",
  help: TRAIN_HELP,
  async run(argv) {
    const c = "train-han";
    const { values: v, positionals } = parseFlags(c, argv, {
      ...TRAINING_RUN_FLAGS,
      dataset: { type: "string" },
      train: { type: "string" },
      eval: { type: "string" },
      "test-from": { type: "string" },
      "vocab-size": { type: "string" },
      "embed-dim": { type: "string" },
      "hidden-size": { type: "string" },
      "max-sentences": { type: "string" },
      "max-words": { type: "string" },
    });
    if (positionals.length) throw new UsageError(`${c}: unexpected argument '${positionals[0]}'`);
    if (!v.out) throw new UsageError(`${c}: --out DIR is required`);
    if (v.data) throw new UsageError(`${c}: give documents with --train FILE (and --eval FILE) or --dataset NAME`);
    if (!!v.dataset === !!v.train) throw new UsageError(`${c}: give --dataset NAME or --train FILE (one of them)`);
    const opt = (flag: string, o: { int?: boolean; min?: number } = {}) => {
      const value = (v as Record<string, string | undefined>)[flag];
      return value === undefined ? undefined : num(c, flag, value, 0, o);
    };
    let data: { train: LabeledText[]; eval: LabeledText[]; note: string };
    if (v.dataset) data = datasetSplit(c, v.dataset, opt("test-from", { int: true }));
    else data = { train: readLabeledFile(v.train as string), eval: v.eval ? readLabeledFile(v.eval) : [], note: v.train as string };
    process.stderr.write(`${data.note}: ${data.train.length} training and ${data.eval.length} held-out documents\n`);
    const r = await runWithProgress((hooks) =>
      trainHAN(
        {
          out: v.out as string,
          train: data.train,
          eval: data.eval,
          notes: { name: v.dataset ?? v.train, note: data.note, kind: "gold" },
          resume: v.resume,
          overwrite: v.overwrite,
          vocabSize: opt("vocab-size", { int: true, min: 5 }),
          embedDim: opt("embed-dim", { int: true, min: 1 }),
          hiddenSize: opt("hidden-size", { int: true, min: 1 }),
          maxSentences: opt("max-sentences", { int: true, min: 1 }),
          maxWords: opt("max-words", { int: true, min: 1 }),
          batchSize: opt("batch-size", { int: true, min: 1 }),
          maxSteps: opt("max-steps", { int: true, min: 0 }),
          learningRate: opt("learning-rate", { min: 0 }),
          weightDecay: opt("weight-decay", { min: 0 }),
          seed: opt("seed", { int: true, min: 0 }),
          evalInterval: opt("eval-interval", { int: true, min: 1 }),
        },
        hooks,
      ),
    );
    const ev = r.eval
      ? `; held-out accuracy ${((r.eval.accuracy ?? 0) * 100).toFixed(1)}%, macro F1 ${(r.eval.macro_f1 ?? 0).toFixed(4)}`
      : "";
    console.log(
      `${r.status === "interrupted" ? "stopped" : "done"}: ${r.step} steps, ${r.params} parameters${ev}; model saved in ${v.out}`,
    );
    return r.status === "interrupted" ? 130 : 0;
  },
};

export const hanAttentionCommand: Command = {
  summary: "print a document's label and a hierarchical attention network's word and sentence attention",
  help: ATTENTION_HELP,
  run(argv) {
    const c = "han-attention";
    const { values: v, positionals } = parseFlags(c, argv, {
      model: { type: "string" },
      text: { type: "string" },
      file: { type: "string" },
      top: { type: "string" },
      json: { type: "boolean" },
      html: { type: "string" },
    });
    if (positionals.length)
      throw new UsageError(`${c}: unexpected argument '${positionals[0]}'; put the document after --text or in --file`);
    if (!v.model) throw new UsageError(`${c}: --model DIR is required`);
    if ((v.text === undefined) === (v.file === undefined))
      throw new UsageError(`${c}: give the document with --text TEXT or --file FILE (one of them)`);
    let text = v.text as string;
    if (v.file !== undefined) {
      try {
        text = readFileSync(v.file, "utf8");
      } catch (e) {
        throw new UsageError(`${c}: cannot read '${v.file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    }
    const top = num(c, "top", v.top, 10, { int: true, min: 0 });
    const a = hanAttention(loadHAN(v.model), text);
    if (v.html !== undefined) {
      writeFileAtomic(v.html, attentionHtml(a));
      process.stderr.write(`wrote ${v.html}\n`);
    }
    if (v.json) {
      console.log(JSON.stringify(a));
      return 0;
    }
    const probs = Object.entries(a.probabilities)
      .map(([l, p]) => `${l} ${p.toFixed(3)}`)
      .join(", ");
    console.log(`label: ${a.label} (${probs})`);
    const ranked = a.sentences.map((s, i) => ({ ...s, i })).sort((x, y) => y.weight - x.weight);
    const shown = top === 0 ? ranked : ranked.slice(0, top);
    console.log(
      `${a.sentences.length} sentences; ${top === 0 || top >= a.sentences.length ? "all" : `the ${shown.length}`} with the most attention:`,
    );
    for (const s of shown) {
      // The words that hold half of the sentence's word attention, marked [like this].
      const byWeight = [...s.words].sort((x, y) => y.weight - x.weight);
      const marked = new Set<number>();
      let mass = 0;
      for (const w of byWeight) {
        if (mass >= 0.5) break;
        marked.add(s.words.indexOf(w));
        mass += w.weight;
      }
      const words = s.words.map((w, t) => (marked.has(t) ? `[${w.word}]` : w.word)).join(" ");
      console.log(`  #${String(s.i + 1).padEnd(4)} ${s.weight.toFixed(3)}  ${words}`);
    }
    return 0;
  },
};
