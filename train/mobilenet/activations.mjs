#!/usr/bin/env node
// Run the nsfwjs MobileNetV2 with TF.js (pure-JS CPU backend) and dump the
// activations of some layers.
//   usage: node train/mobilenet/activations.mjs IN.f32 OUTDIR [layer ...]
// IN.f32: raw little-endian float32 NHWC image, 1x224x224x3, already preprocessed.
// Writes OUTDIR/<layer>.f32 (raw float32, NHWC) and OUTDIR/shapes.json.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { loadNsfwjsMobileNetV2 } from "./common.mjs";

const require = createRequire(import.meta.url);
const tf = require("@tensorflow/tfjs");

const [inPath, outDir, ...names] = process.argv.slice(2);
if (!inPath || !outDir) { console.error("usage: activations.mjs IN.f32 OUTDIR [layer ...]"); process.exit(2); }
const layerNames = names.length ? names : ["Conv1_relu", "block_1_project_BN", "block_3_project_BN",
  "block_6_project_BN", "block_9_add", "block_10_project_BN"];

await tf.setBackend("cpu");
const { modelJson, weightSpecs, shard } = loadNsfwjsMobileNetV2();
const weightData = shard.buffer.slice(shard.byteOffset, shard.byteOffset + shard.length);
const model = await tf.loadLayersModel(tf.io.fromMemory({
  modelTopology: modelJson.modelTopology, weightSpecs, weightData }));
const sub = tf.model({ inputs: model.inputs, outputs: layerNames.map((n) => model.getLayer(n).output) });

const buf = fs.readFileSync(inPath);
const x = tf.tensor4d(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4), [1, 224, 224, 3]);
let outs = sub.predict(x);
if (!Array.isArray(outs)) outs = [outs];
fs.mkdirSync(outDir, { recursive: true });
const shapes = {};
for (let i = 0; i < layerNames.length; i++) {
  const d = outs[i].dataSync();
  fs.writeFileSync(path.join(outDir, `${layerNames[i]}.f32`), Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  shapes[layerNames[i]] = outs[i].shape;
}
fs.writeFileSync(path.join(outDir, "shapes.json"), JSON.stringify(shapes));
console.log(`tfjs ${tf.version.tfjs} backend ${tf.getBackend()}: wrote ${layerNames.length} activations to ${outDir}`);
