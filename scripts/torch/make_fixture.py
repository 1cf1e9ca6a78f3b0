"""Writes the numerics fixtures the Go tests check against PyTorch.

nn/testdata/unet_s_fixture.safetensors: the PyTorch UNet-S (bench/unet_s_torch.py) built with
torch.manual_seed(0), its weights under their state_dict names, a batch of two 1x28x28 images with
t = [10, 900] and a target, the output eps, the MSE loss, and the gradients of the loss with respect to
the input ("grad.input") and a sample of parameters ("grad.<name>").

nn/testdata/adamw_fixture.safetensors: three torch.optim.AdamW steps (lr 1e-2, default betas, eps and
weight decay 0.01) on two small parameters with fixed gradients; "w0.<name>" initial, "g<k>.<name>" the
gradient used at step k, "w<k>.<name>" the weights after step k.

    /usr/bin/python3 scripts/torch/make_fixture.py
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "bench"))

import sftensors  # noqa: E402
from unet_s_torch import UNetS  # noqa: E402

GRADS = ["temb.0.weight", "temb.2.bias", "conv_in.weight", "conv_in.bias", "down.0.n1.weight",
         "down.0.c1.weight", "down.1.skip.weight", "down.2.t.weight", "downsample.0.weight",
         "downsample.1.bias", "mid.n2.bias", "mid.c2.bias", "up.0.skip.bias", "up.1.t.weight",
         "up.2.c1.weight", "up.2.skip.weight", "upsample.1.conv.weight", "out_norm.weight",
         "out_norm.bias", "out_conv.weight", "out_conv.bias"]


def unet_fixture(path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = UNetS()
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    t = torch.tensor([10, 900])
    target = torch.randn(2, 1, 28, 28)
    out = model(x, t)
    loss = F.mse_loss(out, target)
    loss.backward()
    tensors = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    tensors["input"] = x.detach().numpy()
    tensors["t"] = t.to(torch.float32).numpy()
    tensors["target"] = target.numpy()
    tensors["output"] = out.detach().numpy()
    tensors["loss"] = loss.detach().reshape(1).numpy()
    tensors["grad.input"] = x.grad.numpy()
    params = dict(model.named_parameters())
    for name in GRADS:
        tensors["grad." + name] = params[name].grad.numpy()
    sftensors.write(path, tensors, {"torch": torch.__version__, "seed": "0", "t": "10,900"})


def adamw_fixture(path):
    torch.manual_seed(1)
    a = torch.nn.Parameter(torch.randn(3, 4))
    b = torch.nn.Parameter(torch.randn(5))
    opt = torch.optim.AdamW([a, b], lr=1e-2)
    tensors = {"w0.a": a.detach().clone().numpy(), "w0.b": b.detach().clone().numpy()}
    for k in range(1, 4):
        ga, gb = torch.randn(3, 4), torch.randn(5) * 10 ** (k - 2)
        a.grad, b.grad = ga.clone(), gb.clone()
        opt.step()
        tensors[f"g{k}.a"], tensors[f"g{k}.b"] = ga.numpy(), gb.numpy()
        tensors[f"w{k}.a"], tensors[f"w{k}.b"] = a.detach().clone().numpy(), b.detach().clone().numpy()
    sftensors.write(path, tensors, {"torch": torch.__version__, "lr": "0.01", "weight_decay": "0.01"})


def main():
    out = os.path.join(REPO, "nn", "testdata")
    os.makedirs(out, exist_ok=True)
    unet_fixture(os.path.join(out, "unet_s_fixture.safetensors"))
    adamw_fixture(os.path.join(out, "adamw_fixture.safetensors"))


if __name__ == "__main__":
    main()
