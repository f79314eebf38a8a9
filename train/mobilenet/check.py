#!/usr/bin/python3
"""Check mobilenet_v2_block10.safetensors against the TF.js model it came from.

usage: /usr/bin/python3 train/mobilenet/check.py WEIGHTS.safetensors [IMAGE] [--nsfwjs-preproc]

Loads the safetensors into torchvision's mobilenet_v2().features[:12] (BN eps
1e-3), runs it on IMAGE (default: skimage's astronaut.png) resized to 224x224,
runs the nsfwjs model in TF.js (node train/mobilenet/activations.mjs) on the
very same preprocessed tensor, and prints max abs / relative differences per
layer, both with TF-style stride-2 padding (pad bottom/right only) and with
torchvision's stock symmetric padding.
"""
import json, os, struct, subprocess, sys, tempfile

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
# Keras layer -> index of the torchvision features module whose output it is
LAYERS = {"Conv1_relu": 0, "block_1_project_BN": 2, "block_3_project_BN": 4,
          "block_6_project_BN": 7, "block_9_add": 10, "block_10_project_BN": 11}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "header not padded to 8"
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    end = 0
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        b, e = t["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
        end = max(end, e)
    assert end == len(data), "trailing bytes"
    return out, meta


def build(state, tf_padding):
    feats = torchvision.models.mobilenet_v2().features[:12]
    for m in feats.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-3
    assert all(k.startswith("features.") for k in state)
    missing, unexpected = feats.load_state_dict(
        {k[len("features."):]: v for k, v in state.items()}, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    if tf_padding:
        for m in feats.modules():
            if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2):
                m.padding = (0, 0)
                m.register_forward_pre_hook(lambda mod, inp: (F.pad(inp[0], (0, 1, 0, 1)),))
    return feats.eval()


def taps(feats, x):
    outs = {}
    with torch.no_grad():
        for i, m in enumerate(feats):
            x = m(x)
            outs[i] = x.permute(0, 2, 3, 1).contiguous().numpy()  # NHWC like TF
    return outs


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not args:
        sys.exit(__doc__)
    weights = args[0]
    image = args[1] if len(args) > 1 else "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"
    nsfwjs_pre = "--nsfwjs-preproc" in sys.argv

    state, meta = read_safetensors(weights)
    print(f"{weights}: {len(state)} tensors; bn_eps={meta.get('bn_eps')}")
    img = Image.open(image).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32)
    x = x / 255.0 if nsfwjs_pre else x / 127.5 - 1.0
    print(f"image {image} -> 224x224, preprocessing {'x/255' if nsfwjs_pre else 'x/127.5-1'}")

    with tempfile.TemporaryDirectory() as td:
        inp = os.path.join(td, "in.f32")
        x.astype("<f4").tofile(inp)
        subprocess.run(["node", os.path.join(HERE, "activations.mjs"), inp, td, *LAYERS],
                       check=True, stderr=subprocess.DEVNULL)
        shapes = json.load(open(os.path.join(td, "shapes.json")))
        ref = {k: np.fromfile(os.path.join(td, k + ".f32"), dtype="<f4").reshape(shapes[k]) for k in LAYERS}

    xt = torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0).contiguous()
    worst = 0.0
    for tf_pad in (True, False):
        outs = taps(build(state, tf_pad), xt)
        print(f"\n{'TF-style padding (0,1,0,1)' if tf_pad else 'stock torchvision padding 1'}:")
        print(f"  {'layer':22s} {'shape':18s} {'max|ref|':>9s} {'max abs diff':>13s} {'rel(max)':>10s} {'mean abs':>10s}")
        for name, idx in LAYERS.items():
            a, r = outs[idx], ref[name]
            assert a.shape == r.shape, (name, a.shape, r.shape)
            d = np.abs(a - r)
            rel = d.max() / np.abs(r).max()
            if tf_pad:
                worst = max(worst, rel)
            print(f"  {name:22s} {str(list(r.shape)):18s} {np.abs(r).max():9.4f} {d.max():13.3e} {rel:10.3e} {d.mean():10.3e}")
    print(f"\nworst relative (max abs diff / max|ref|) with TF padding: {worst:.3e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
