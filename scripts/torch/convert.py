"""Converts model weights between a PyTorch state_dict (.pt) and safetensors, with numpy and torch only.

    /usr/bin/python3 scripts/torch/convert.py model.pt model.safetensors [--config cfg.json]
    /usr/bin/python3 scripts/torch/convert.py model.safetensors model.pt

The direction follows the file extensions. Names are kept as they are: the Go model "unet-s" uses the
state_dict names of bench/unet_s_torch.py, so `UNetS().load_state_dict(torch.load("model.pt"))`
works on a file converted from a Go checkpoint. Only float tensors are converted (to float32); a Go
checkpoint's JSON model config travels in the safetensors "__metadata__" under the key "config", and
--config puts one there when converting from .pt. Training-state files (keys with "ema.", "adamw."
prefixes) convert too; pass --prefix ema. to take only the EMA weights, renamed to plain names.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sftensors  # noqa: E402


def pt_to_safetensors(src, dst, config=None):
    sd = torch.load(src, map_location="cpu")
    if isinstance(sd, torch.nn.Module):
        sd = sd.state_dict()
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    tensors = {}
    for k, v in sd.items():
        if not torch.is_tensor(v) or not v.is_floating_point():
            print(f"skip {k}: not a float tensor", file=sys.stderr)
            continue
        tensors[k] = v.detach().to(torch.float32).contiguous().numpy()
    meta = {"format": "pt"}
    if config:
        with open(config) as f:
            meta["config"] = f.read()
    sftensors.write(dst, tensors, meta)
    return len(tensors)


def safetensors_to_pt(src, dst, prefix=""):
    tensors, meta = sftensors.read(src)
    sd = {}
    for k, a in tensors.items():
        if prefix:
            if not k.startswith(prefix):
                continue
            k = k[len(prefix):]
        elif "." in k and k.split(".", 1)[0] in ("ema", "adamw"):
            continue  # training-state extras; the plain names are the model
        sd[k] = torch.from_numpy(np.array(a, dtype=np.float32))
    torch.save(sd, dst)
    if "config" in meta:
        print(f"config: {meta['config']}", file=sys.stderr)
    return len(sd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--config", help="JSON model config to store in the safetensors metadata")
    ap.add_argument("--prefix", default="", help="take only tensors with this prefix (e.g. ema.) and strip it")
    a = ap.parse_args()
    if a.src.endswith(".pt") and a.dst.endswith(".safetensors"):
        n = pt_to_safetensors(a.src, a.dst, a.config)
    elif a.src.endswith(".safetensors") and a.dst.endswith(".pt"):
        n = safetensors_to_pt(a.src, a.dst, a.prefix)
    else:
        sys.exit("convert: want .pt -> .safetensors or .safetensors -> .pt")
    print(f"wrote {n} tensors to {a.dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
