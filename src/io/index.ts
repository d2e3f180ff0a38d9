// Files on disk: safetensors, model directories and training checkpoints.

export { fsyncDir, writeFileAtomic } from "./atomic.js";
export type { CheckpointParts, GPT2StyleConfig } from "./checkpoint.js";
export {
  CheckpointError,
  CONFIG_FILE,
  checkpointFile,
  configFromJSON,
  configToJSON,
  loadModel,
  loadOptimizerState,
  loadWeights,
  MODEL_FILE,
  OPTIMIZER_FILE,
  readConfig,
  readRawConfig,
  readTokenizer,
  readTrainerState,
  recoverCheckpoint,
  saveCheckpoint,
  saveModel,
  TOKENIZER_FILE,
  TRAINER_STATE_FILE,
} from "./checkpoint.js";
export type { HeaderEntry, SafeTensor, SafetensorsHeader, TensorData } from "./safetensors.js";
export {
  DTYPES,
  decodeSafetensors,
  encodeSafetensors,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  writeSafetensors,
} from "./safetensors.js";
