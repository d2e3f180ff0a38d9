// `moxing pipeline`: run a pipeline (fill-mask, text classification, NER, QA, feature extraction,
// text generation) on texts from the command line and print its output as JSON.

import {
  FeatureExtractionPipeline,
  PipelineError,
  pipeline,
  QuestionAnsweringPipeline,
  SUPPORTED_TASKS,
  SummarizationPipeline,
  TextGenerationPipeline,
  TokenClassificationPipeline,
  TranslationPipeline,
} from "../pipelines/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Command } from "./util.js";
import { num, parseFlags, UsageError } from "./util.js";

const HELP = `moxing pipeline: run a model on texts and print the result as JSON (transformers.js's shapes)

Usage: moxing pipeline TASK --model DIR [flags] TEXT...

  TASK                ${[...SUPPORTED_TASKS.keys()].join(" | ")}
  --model DIR         a model directory for the task: a fine-tuned BERT (text-classification, ner,
                      question-answering), a pretrained BERT (fill-mask, feature-extraction), or a
                      GPT (text-generation)
  --context TEXT      question-answering: the context; each TEXT is a question
  --top N             fill-mask and text-classification: how many results (default 5 and 1)
  --aggregate         token-classification: group B-/I- words into entities
  --pooling mean|cls  feature-extraction: one vector per text (default: a vector per token)
  --max-new-tokens N  text-generation (default 50)

Examples:
  moxing pipeline fill-mask --model runs/bert "the united [MASK] of america"
  moxing pipeline sentiment-analysis --model runs/senti "We will win." "Crime is rising."
  moxing pipeline question-answering --model runs/qa --context "In 1962, John F. Kennedy spoke." "Who spoke in 1962?"`;

export const pipelineCommand: Command = {
  summary: "run a pipeline (fill-mask, classification, NER, QA, embeddings, generation) on texts, printing JSON",
  help: HELP,
  async run(argv) {
    const c = "pipeline";
    const { values: v, positionals } = parseFlags(c, argv, {
      model: { type: "string" },
      context: { type: "string" },
      top: { type: "string" },
      aggregate: { type: "boolean" },
      pooling: { type: "string" },
      "max-new-tokens": { type: "string" },
    });
    const [task, ...texts] = positionals;
    if (!task) throw new UsageError(`${c}: give the task first (${[...SUPPORTED_TASKS.keys()].join(", ")})`);
    if (!SUPPORTED_TASKS.has(task))
      throw new UsageError(`${c}: unknown task '${task}'; supported: ${[...SUPPORTED_TASKS.keys()].join(", ")}`);
    if (!v.model) throw new UsageError(`${c}: --model DIR is required`);
    if (texts.length === 0) throw new UsageError(`${c}: give at least one TEXT`);
    if (v.pooling !== undefined && v.pooling !== "mean" && v.pooling !== "cls") throw new UsageError(`${c}: --pooling must be mean or cls`);
    const run = (await pipeline(task, v.model)) as unknown as (...a: unknown[]) => unknown;
    const top = v.top === undefined ? undefined : num(c, "top", v.top, 1, { int: true, min: 1 });
    const results = texts.map((text) => {
      const cls = SUPPORTED_TASKS.get(task);
      try {
        if (cls === QuestionAnsweringPipeline) {
          if (v.context === undefined) throw new UsageError(`${c}: question-answering needs --context TEXT`);
          return run(text, v.context);
        }
        if (cls === TokenClassificationPipeline) return run(text, { aggregation_strategy: v.aggregate ? "simple" : "none" });
        if (cls === FeatureExtractionPipeline) {
          const t = run(text, { pooling: v.pooling ?? "none" }) as Tensor;
          return { dims: t.shape, data: t.toArray() };
        }
        if (cls === TextGenerationPipeline || cls === TranslationPipeline || cls === SummarizationPipeline) {
          return run(text, { max_new_tokens: num(c, "max-new-tokens", v["max-new-tokens"], 50, { int: true, min: 1 }) });
        }
        return run(text, { topk: top });
      } catch (e) {
        if (e instanceof PipelineError) throw new UsageError(`${c}: ${e.message}`);
        throw e;
      }
    });
    console.log(JSON.stringify(results.length === 1 ? results[0] : results, null, 2));
    return 0;
  },
};
