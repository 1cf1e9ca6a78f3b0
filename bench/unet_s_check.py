"""Checks bench/unet_s_torch.py against the PyTorch numbers the Go tests use, and optionally against
another PyTorch UNet-S.

Always: built with torch.manual_seed(0) as scripts/torch/make_fixture.py builds it, the model must have
nn/testdata/unet_s_params.txt's state_dict names and shapes in that order, the weights stored in
nn/testdata/unet_s_fixture.safetensors bit for bit, and on the fixture's input and timesteps its
output, MSE loss and gradients (relative error <= 1e-5).

With --reference FILE (a Python file that defines UNetS): both models are built from the same seed
and must have the same state_dict names, shapes and values, and give the same output on the same
input in fp32 and under bf16 autocast.

    /usr/bin/python3 bench/unet_s_check.py [--reference FILE]

Prints one line per check and exits non-zero on the first mismatch. bench/unet_s_test.go runs it.
"""
import argparse
import importlib.util
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "scripts", "torch"))

import sftensors  # noqa: E402
from unet_s_torch import UNetS  # noqa: E402


def fail(msg):
    sys.exit("unet_s_check: " + msg)


def rel_err(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def check_params_list(model):
    want = []
    with open(os.path.join(REPO, "nn", "testdata", "unet_s_params.txt")) as f:
        for line in f:
            name, dims = line.split()
            if name != "total":
                want.append((name, tuple(int(d) for d in dims.split(","))))
            else:
                total = int(dims)
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    if got != want:
        fail(f"state_dict names/shapes differ from nn/testdata/unet_s_params.txt: {len(got)} vs {len(want)} entries, "
             f"first difference {next((g, w) for g, w in zip(got + [None] * len(want), want + [None] * len(got)) if g != w)}")
    n = sum(p.numel() for p in model.parameters())
    if n != total:
        fail(f"{n} parameters, want {total}")
    print(f"params list: {len(got)} tensors, {n} parameters, as nn/testdata/unet_s_params.txt")


def check_fixture(model):
    fix, _ = sftensors.read(os.path.join(REPO, "nn", "testdata", "unet_s_fixture.safetensors"))
    for k, v in model.state_dict().items():
        if not np.array_equal(v.numpy(), fix[k]):
            fail(f"seed-0 weight {k} differs from the fixture (max abs diff {np.abs(v.numpy() - fix[k]).max()})")
    print("fixture weights: all equal at torch.manual_seed(0)")
    x = torch.tensor(np.array(fix["input"]), requires_grad=True)
    t = torch.tensor(np.array(fix["t"])).long()
    out = model(x, t)
    loss = F.mse_loss(out, torch.tensor(np.array(fix["target"])))
    loss.backward()
    worst = {"output": rel_err(out.detach().numpy(), fix["output"]),
             "loss": rel_err(loss.detach().reshape(1).numpy(), fix["loss"]),
             "grad.input": rel_err(x.grad.numpy(), fix["grad.input"])}
    params = dict(model.named_parameters())
    for k in fix:
        if k.startswith("grad.") and k != "grad.input":
            worst[k] = rel_err(params[k[5:]].grad.numpy(), fix[k])
    for k, e in worst.items():
        if not e <= 1e-5:
            fail(f"fixture {k}: relative error {e:.3g} > 1e-5")
    print(f"fixture output, loss and {len(worst) - 2} gradients: max relative error {max(worst.values()):.3g}")


def load_reference(path):
    spec = importlib.util.spec_from_file_location("unet_s_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.UNetS


def check_reference(path):
    Ref = load_reference(path)
    torch.manual_seed(0)
    ours = UNetS()
    torch.manual_seed(0)
    ref = Ref()
    a, b = ours.state_dict(), ref.state_dict()
    if [(k, tuple(v.shape)) for k, v in a.items()] != [(k, tuple(v.shape)) for k, v in b.items()]:
        fail(f"state_dict names/shapes differ from {path}")
    for k in a:
        if not torch.equal(a[k], b[k]):
            fail(f"seed-0 weight {k} differs from {path}")
    print(f"reference: {len(a)} state_dict entries, same names, shapes and seed-0 values")
    torch.manual_seed(1)
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 500, 999])
    ours.eval()
    ref.eval()
    for precision in ("fp32", "bf16"):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            ya, yb = ours(x, t), ref(x, t)
        if ya.dtype != yb.dtype or not torch.equal(ya, yb):
            fail(f"{precision} output differs from {path}: max abs diff {(ya.float() - yb.float()).abs().max().item()}")
        print(f"reference: {precision} outputs equal on a batch of 4")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", help="a Python file defining another PyTorch UNetS to compare with")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = UNetS()
    check_params_list(model)
    check_fixture(model)
    if a.reference:
        check_reference(a.reference)


if __name__ == "__main__":
    main()
