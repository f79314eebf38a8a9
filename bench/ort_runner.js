// ort_runner.js — times an ONNX model in onnxruntime-node for
// bench/learned_speed.py (which installs onnxruntime-node, see README.md).
//
//   node ort_runner.js MODEL INPUT.f32 C H W OUT_H OUT_W WARMUP RUNS THREADS OUT.f32
//
// INPUT: float32 little-endian, NCHW (1, C, H, W), the network's packed or
// split input; the output is (1, 3, OUT_H, OUT_W). Session: intraOpNumThreads
// THREADS, interOpNumThreads 1, sequential execution, graphOptimizationLevel
// 'all', CPU provider. The output tensor is allocated once and passed as a
// fetch: with a fresh output per run, the runs' times follow node's garbage
// collection of the old 144 MB outputs (0.3 to 0.6 s at 12 MP for the same
// work). WARMUP untimed runs, then RUNS timed session.run() calls, each
// printed as "time_s SECONDS". OUT gets the output as float32 NCHW.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const a = process.argv.slice(2);
  if (a.length !== 11) {
    console.error(
        'usage: node ort_runner.js MODEL INPUT.f32 C H W OUT_H OUT_W WARMUP RUNS THREADS OUT.f32');
    process.exit(2);
  }
  const [model, input, c, h, w, oh, ow, warmup, runs, threads, out] =
      [a[0], a[1], +a[2], +a[3], +a[4], +a[5], +a[6], +a[7], +a[8], +a[9], a[10]];
  const buf = fs.readFileSync(input);
  const n = c * h * w;
  if (buf.length !== n * 4) {
    throw new Error(`${input}: ${buf.length} bytes, expected ${n * 4}`);
  }
  // A view when the buffer is 4-byte aligned (a fresh large read is), else a copy.
  const data = buf.byteOffset % 4 === 0
      ? new Float32Array(buf.buffer, buf.byteOffset, n)
      : new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + n * 4));
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [1, c, h, w])};
  const o = new ort.Tensor('float32', new Float32Array(3 * oh * ow), [1, 3, oh, ow]);
  const fetches = {[session.outputNames[0]]: o};
  for (let r = 0; r < warmup; r++) await session.run(feeds, fetches);
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds, fetches);
    const t1 = process.hrtime.bigint();
    console.log(`time_s ${(Number(t1 - t0) / 1e9).toFixed(6)}`);
  }
  fs.writeFileSync(out, Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength));
}

main().catch((e) => {
  console.error(`ort_runner: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
