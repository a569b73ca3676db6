// llama.cpp's view of a GGUF file, for the export tests: loads MODEL on the CPU, tokenizes each
// prompt (special tokens parsed, no BOS: that is reported separately) and continues it greedily.
//   node run.mjs MODEL.gguf REQUEST.json
// REQUEST.json: {"prompts": ["...", ...], "max_tokens": N}. Prints one JSON object:
//   {"add_bos": bool, "bos": id|null, "results": [{"tokens": [...], "continuation": [...]}, ...]}
// The continuation starts from BOS + tokens when add_bos, else from the tokens, and has exactly
// max_tokens ids (end-of-generation tokens included: the caller decides where to stop).
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, requestPath] = process.argv.slice(2);
if (!modelPath || !requestPath) {
  console.error("usage: node run.mjs MODEL.gguf REQUEST.json");
  process.exit(2);
}
const request = JSON.parse(readFileSync(requestPath, "utf8"));

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const addBos = model.tokens.shouldPrependBosToken;
const bos = model.tokens.bos ?? null;
const results = [];
for (const prompt of request.prompts) {
  const tokens = model.tokenize(prompt, true);
  // f32 keys and values and no flash attention, so an f32 file runs in f32 throughout.
  const context = await model.createContext({contextSize: 512, sequences: 1, threads: 1, flashAttention: false,
                                             experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
  const sequence = context.getSequence();
  const input = addBos ? [bos, ...tokens] : tokens;
  const continuation = [];
  if (request.max_tokens > 0)
    for await (const token of sequence.evaluate(input, {temperature: 0, yieldEogToken: true})) {
      continuation.push(token);
      if (continuation.length >= request.max_tokens) break;
    }
  await context.dispose();
  results.push({tokens, continuation});
}
await model.dispose();
console.log(JSON.stringify({add_bos: addBos, bos, results}));
