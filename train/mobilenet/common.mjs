// Shared helpers for the nsfwjs MobileNetV2 converter and the TF.js activation
// dump.  Reads the model that npm `nsfwjs` ships as UMD/CommonJS modules:
//   dist/models/mobilenet_v2/model.min.js          -> TF.js *layers* model.json
//                                                     (Keras 2.2.4 topology + weightsManifest)
//   dist/models/mobilenet_v2/group1-shard1of1.min.js -> base64 string of the weight shard
// Every weight in the manifest is uint8 affine-quantised: value = q * scale + min.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";

const here = path.dirname(fileURLToPath(import.meta.url));
export const trainDir = path.resolve(here, "..");
const require = createRequire(import.meta.url);
// nsfwjs' "exports" map hides package.json and dist/models, so use the path.
export const nsfwjsDir = process.env.NSFWJS_DIR || path.join(trainDir, "node_modules", "nsfwjs");

export function nsfwjsVersion() {
  return JSON.parse(fs.readFileSync(path.join(nsfwjsDir, "package.json"), "utf8")).version;
}

export function loadNsfwjsMobileNetV2() {
  const dir = path.join(nsfwjsDir, "dist", "models", "mobilenet_v2");
  const modelJson = require(path.join(dir, "model.min.js"));
  const manifest = modelJson.weightsManifest;
  if (!manifest || manifest.length !== 1 || manifest[0].paths.length !== 1)
    throw new Error("unexpected nsfwjs weightsManifest layout");
  const b64 = require(path.join(dir, "group1-shard1of1.min.js"));
  if (typeof b64 !== "string") throw new Error("weight shard is not a base64 string");
  const shard = Buffer.from(b64, "base64");
  return { modelJson, weightSpecs: manifest[0].weights, shard };
}

// Decode the shard into {name: {shape, data: Float32Array}} exactly as TF.js
// does (tfjs-core io.decodeWeights: q * scale + min, stored as float32).
export function decodeWeights(weightSpecs, shard) {
  const out = new Map();
  let off = 0;
  for (const spec of weightSpecs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const q = spec.quantization;
    let data;
    if (!q) {
      if (spec.dtype !== "float32") throw new Error(`${spec.name}: dtype ${spec.dtype}`);
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = shard.readFloatLE(off + 4 * i);
      off += 4 * n;
    } else if (q.dtype === "uint8") {
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = shard[off + i] * q.scale + q.min;
      off += n;
    } else {
      throw new Error(`${spec.name}: unsupported quantisation ${q.dtype}`);
    }
    out.set(spec.name, { shape: spec.shape, data });
  }
  if (off !== shard.length) throw new Error(`shard size mismatch: used ${off} of ${shard.length}`);
  return out;
}

// Keras layer name -> torchvision mobilenet_v2().features prefix, up to block_10.
export function kerasToTorchPrefix(layer) {
  const fixed = {
    Conv1: "features.0.0", bn_Conv1: "features.0.1",
    expanded_conv_depthwise: "features.1.conv.0.0", expanded_conv_depthwise_BN: "features.1.conv.0.1",
    expanded_conv_project: "features.1.conv.1", expanded_conv_project_BN: "features.1.conv.2",
  };
  if (layer in fixed) return fixed[layer];
  const m = /^block_(\d+)_(expand|expand_BN|depthwise|depthwise_BN|project|project_BN)$/.exec(layer);
  if (!m) return null;
  const k = Number(m[1]);
  if (k < 1 || k > 10) return null;
  const sub = { expand: "conv.0.0", expand_BN: "conv.0.1", depthwise: "conv.1.0",
                depthwise_BN: "conv.1.1", project: "conv.2", project_BN: "conv.3" }[m[2]];
  return `features.${k + 1}.${sub}`;
}
