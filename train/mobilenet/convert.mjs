#!/usr/bin/env node
// Convert the ImageNet part (Conv1 .. block_10) of the MobileNetV2 (alpha 1.0,
// 224x224) shipped in npm `nsfwjs` to a safetensors file whose tensor names
// and layouts are those of torchvision's mobilenet_v2().features[0:12].
//   usage: node train/mobilenet/convert.mjs OUT.safetensors
// Needs only the installed train/node_modules/nsfwjs; no network.
import fs from "node:fs";
import { loadNsfwjsMobileNetV2, decodeWeights, kerasToTorchPrefix, nsfwjsVersion } from "./common.mjs";

const outPath = process.argv[2];
if (!outPath) { console.error("usage: convert.mjs OUT.safetensors"); process.exit(2); }

const { modelJson, weightSpecs, shard } = loadNsfwjsMobileNetV2();
const W = decodeWeights(weightSpecs, shard);

// Sanity: the layers we export must be the frozen (ImageNet) ones.
const layers = modelJson.modelTopology.model_config.config.layers;
const byName = new Map(layers.map((l) => [l.config.name, l]));

const tensors = []; // {name, shape, data}
function transposeConv(src, [kh, kw, ci, co]) {      // [kh,kw,in,out] -> [out,in,kh,kw]
  const dst = new Float32Array(src.length);
  for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++)
    for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++)
      dst[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o];
  return { shape: [co, ci, kh, kw], data: dst };
}
function transposeDepthwise(src, [kh, kw, ci, mult]) { // [kh,kw,in,mult] -> [in*mult,1,kh,kw]
  const dst = new Float32Array(src.length);
  for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++)
    for (let i = 0; i < ci; i++) for (let m = 0; m < mult; m++)
      dst[((i * mult + m) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * mult + m];
  return { shape: [ci * mult, 1, kh, kw], data: dst };
}
const bnMap = { gamma: "weight", beta: "bias", moving_mean: "running_mean", moving_variance: "running_var" };

let exportedLayers = 0;
for (const [wname, w] of W) {
  const [layer, param] = wname.split("/");
  const prefix = kerasToTorchPrefix(layer);
  if (!prefix) continue;
  const L = byName.get(layer);
  if (!L || L.config.trainable !== false) throw new Error(`${layer} is not a frozen layer`);
  if (L.class_name === "Conv2D" && param === "kernel") {
    if (L.config.use_bias) throw new Error(`${layer} has a bias`);
    tensors.push({ name: `${prefix}.weight`, ...transposeConv(w.data, w.shape) });
    exportedLayers++;
  } else if (L.class_name === "DepthwiseConv2D" && param === "depthwise_kernel") {
    tensors.push({ name: `${prefix}.weight`, ...transposeDepthwise(w.data, w.shape) });
    exportedLayers++;
  } else if (L.class_name === "BatchNormalization" && param in bnMap) {
    if (L.config.epsilon !== 0.001) throw new Error(`${layer}: eps ${L.config.epsilon}`);
    tensors.push({ name: `${prefix}.${bnMap[param]}`, shape: w.shape, data: w.data });
    if (param === "gamma") exportedLayers++;
  } else {
    throw new Error(`unmapped weight ${wname} (${L.class_name})`);
  }
}
if (exportedLayers !== 66) throw new Error(`expected 66 conv/BN layers up to block_10, got ${exportedLayers}`);
if (tensors.length !== 33 + 33 * 4) throw new Error(`expected 165 tensors, got ${tensors.length}`);

// Natural (torch state_dict) order: features index, then sub path.
const key = (n) => n.split(".").map((p) => (/^\d+$/.test(p) ? p.padStart(4, "0") : p)).join(".");
const paramOrder = { weight: 0, bias: 1, running_mean: 2, running_var: 3 };
tensors.sort((a, b) => {
  const pa = a.name.slice(0, a.name.lastIndexOf(".")), pb = b.name.slice(0, b.name.lastIndexOf("."));
  if (pa !== pb) return key(pa) < key(pb) ? -1 : 1;
  return paramOrder[a.name.split(".").pop()] - paramOrder[b.name.split(".").pop()];
});

const metadata = {
  format: "pt",
  source: `npm nsfwjs@${nsfwjsVersion()} dist/models/mobilenet_v2 (TF.js layers model, Keras 2.2.4, uint8-quantised weights dequantised as q*scale+min)`,
  license: "MIT (nsfwjs); underlying weights: Keras Applications MobileNetV2 ImageNet",
  architecture: "MobileNetV2 alpha=1.0, torchvision mobilenet_v2().features[0:12] (Keras Conv1..block_10_project_BN)",
  keras_to_torch: "Conv1->features.0.0, bn_Conv1->features.0.1, expanded_conv_*->features.1, block_k_*->features.(k+1) (expand->conv.0.0/conv.0.1, depthwise->conv.1.0/conv.1.1, project->conv.2/conv.3)",
  output: "features[11] = block_10_project_BN: 96 channels at stride 16 (14x14 for a 224x224 input), no ReLU",
  bn_eps: "0.001",
  bn_eps_note: "Keras BatchNormalization epsilon is 1e-3; set torch BatchNorm2d.eps=1e-3 (torch default 1e-5)",
  input_size: "224",
  input_layout: "RGB",
  preprocessing: "x/127.5-1 (RGB in [-1,1]), Keras mobilenet_v2.preprocess_input, the ImageNet convention of these weights",
  preprocessing_nsfwjs: "nsfwjs itself feeds x/255 (RGB in [0,1]) to this network (bilinear resize to 224)",
  stride2_padding: "TF/Keras pads stride-2 convs by (top 0,bottom 1,left 0,right 1) then 'valid'; torchvision pads 1 on all sides. For exact TF activations pad bottom/right only (F.pad(x,(0,1,0,1)), conv padding=0) in features.0, 2, 4, 7",
};
for (const k of Object.keys(metadata)) metadata[k] = String(metadata[k]);

const header = { __metadata__: metadata };
let off = 0;
for (const t of tensors) {
  const n = t.data.length * 4;
  header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [off, off + n] };
  off += n;
}
let hjson = JSON.stringify(header);
const pad = (8 - (Buffer.byteLength(hjson) % 8)) % 8;
hjson += " ".repeat(pad);
const hbuf = Buffer.from(hjson, "utf8");
const out = Buffer.alloc(8 + hbuf.length + off);
out.writeBigUInt64LE(BigInt(hbuf.length), 0);
hbuf.copy(out, 8);
let p = 8 + hbuf.length;
for (const t of tensors) {
  for (let i = 0; i < t.data.length; i++, p += 4) out.writeFloatLE(t.data[i], p);
}
fs.writeFileSync(outPath, out);
console.log(`wrote ${outPath}: ${tensors.length} tensors, ${off} data bytes, ${exportedLayers} layers (Conv1..block_10)`);
