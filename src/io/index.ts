// Files on disk: safetensors, GGUF, model directories (Hugging Face's GPT-2 layout) and training checkpoints.

export { fsyncDir, writeFileAtomic, writeFileAtomicChunks } from "./atomic.js";
export { causalModelFiles, type LoadedCausalLM, loadCausalLM, loadTrainableLM, saveCausalLM } from "./causal-lm.js";
export type { GGUFFile, GGUFItem, GGUFScalar, GGUFTensorInfo, GGUFTensorOut, GGUFValue, GGUFValueType } from "./gguf.js";
export { encodeGGUF, GGML_TYPES, GGUFError, metadataReader, parseGGUF, plainValue, readGGUF, readGGUFHeader, writeGGUF } from "./gguf.js";
export { exportGGUF, ggufConfig, ggufTensorName, ggufTokenizer, gpt2GGUF, loadGGUFModel } from "./gguf-gpt2.js";
export {
  ggufNameOf as llamaGGUFName,
  hfNameOf as llamaHFName,
  isLlamaGGUF,
  LLAMA_GGUF_ARCHS,
  type LlamaGGUFOptions,
  llamaConfigFromGGUF,
  llamaGGUF,
  llamaTokenizerFromGGUF,
  loadLlamaGGUF,
  typeForRow,
  writeLlamaGGUF,
} from "./gguf-llama.js";
export type { CheckpointParts, GPT2StyleConfig } from "./gpt.js";
export {
  configFromJSON,
  configToJSON,
  endOfTextId,
  gptModelFiles,
  loadModel,
  loadOptimizerState,
  loadWeights,
  readConfig,
  readRawConfig,
  readTokenizer,
  readWeights,
  saveCheckpoint,
  saveModel,
  weightFiles,
} from "./gpt.js";
export {
  emptyLlama,
  isLlamaConfigJSON,
  isLlamaDir,
  llamaConfigFromJSON,
  llamaConfigToJSON,
  llamaModelFiles,
  loadLlamaDir,
  loadLlamaDirWith,
  loadLlamaWeights,
  readHFTokenizer,
  readLlamaConfig,
  readLlamaTokenizer,
  saveLlamaDir,
} from "./llama.js";
export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_MODEL_FILE,
  adapterConfigJSON,
  adapterFiles,
  adapterTensors,
  loadAdapter,
  readAdapterConfig,
  saveAdapter,
} from "./lora.js";
export {
  CheckpointError,
  CONFIG_FILE,
  checkpointFile,
  MODEL_FILE,
  MODEL_INDEX_FILE,
  OPTIMIZER_FILE,
  readTrainerState,
  recoverCheckpoint,
  TOKENIZER_FILE,
  TRAINER_STATE_FILE,
} from "./model-dir.js";
export type { ModelFormat } from "./model-files.js";
export { detectFormat, loadModelFrom, MODEL_FORMATS, outputFormat, saveModelAs } from "./model-files.js";
export type { HeaderEntry, ReadOptions, SafeTensor, SafetensorsHeader, TensorData } from "./safetensors.js";
export {
  bf16ToF32,
  DTYPE_BYTES,
  DTYPES,
  decodeSafetensors,
  encodeSafetensors,
  f16ToF32,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  writeSafetensors,
} from "./safetensors.js";
