"""Writes the PyTorch UNet-S (bench/unet_s_torch.py) state_dict names and shapes, one "name d0,d1,..." per line, then the total.

The Go test nn/unet_test.go compares the Go model's parameter list against this file, so the names stay
those of PyTorch and weights move both ways. Run from anywhere:
    /usr/bin/python3 scripts/torch/params_list.py > nn/testdata/unet_s_params.txt
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench"))

from unet_s_torch import UNetS  # noqa: E402


def main():
    model = UNetS()
    total = 0
    for name, p in model.state_dict().items():
        print(name, ",".join(str(d) for d in p.shape))
        total += p.numel()
    print("total", total)


if __name__ == "__main__":
    main()
