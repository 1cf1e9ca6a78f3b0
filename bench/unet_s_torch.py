"""UNet-S in PyTorch: the model that `ddpm bench` is measured against and the Go model's specification.

UNet-S is a small instance of the DDPM paper's UNet (Ho, Jain and Abbeel, "Denoising Diffusion
Probabilistic Models", NeurIPS 2020, Section 4 and Appendix B): a PixelCNN++-style U-Net with
GroupNorm, residual blocks that add a projection of the sinusoidal timestep embedding (the
Transformer's, Vaswani et al. 2017), stride-2 convolutions down and nearest-neighbour upsampling with
a 3x3 convolution up. Here without self-attention and with one residual block per level:
1x28x28 in and out, channels (32, 64, 128), resolutions 28 -> 14 -> 7 and back, 1,741,025 parameters.

The Go model named "unet-s" (nn/config.go) has exactly these layers, shapes and state_dict names, so
weights move both ways (scripts/torch/convert.py); nn/testdata holds this model's weights, outputs and
gradients at torch.manual_seed(0) (scripts/torch/make_fixture.py) and its parameter list
(scripts/torch/params_list.py). bench/unet_s_check.py checks this file against those fixtures.

Run as a program it times what `ddpm bench` times, the same way (bench/compare runs both):
  - a training step at --batch: x0 uniform in [-1, 1], t uniform in [0, T), eps ~ N(0, I), x_t from the
    linear schedule (beta 1e-4 .. 0.02, T = 1000; the paper's Eq. 4), the MSE of the predicted eps
    (the paper's L_simple, Eq. 14), AdamW at lr 2e-4; 3 warmup steps, then the median of --steps;
  - one forward at --sample-batch without gradients, as a sampler calls it; 2 warmup, median of
    --sample-reps;
  - peak RSS from getrusage.
--precision bf16 runs both under torch.autocast on the CPU with GroupNorm computed in fp32.

Setup (Debian bookworm, as root):  apt-get install -y python3-torch python3-numpy libopenblas0-pthread
                                   (scripts/setup.sh --peer)
Run:  /usr/bin/python3 bench/unet_s_torch.py [--threads 2] [--batch 128] [--steps 10]
          [--sample-batch 256] [--sample-reps 5] [--precision fp32|bf16]
Prints one JSON line: {"engine", "precision", "threads", "params", "train_img_s", "sample_img_s",
"peak_rss_mib"}.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

T = 1000  # diffusion steps of the linear schedule the training step draws t from
TIME_DIM = 64  # width of the sinusoidal timestep embedding
EMB_DIM = 256  # width of the embedding after its MLP, projected into every residual block
GROUPS = 8  # GroupNorm groups everywhere


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that normalises in fp32 whatever the input's dtype and returns that dtype, so the
    statistics stay exact under bf16 autocast (as guided-diffusion does)."""

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def conv3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """h = c1(silu(n1(x))) + t(silu(emb)); out = c2(silu(n2(h))) + skip(x), skip a 1x1 convolution
    when the channel count changes. (The layers are created in this order; it fixes their seeded
    initial weights.)"""

    def __init__(self, cin, cout, emb_dim=EMB_DIM):
        super().__init__()
        self.n1 = GroupNorm32(GROUPS, cin)
        self.c1 = conv3(cin, cout)
        self.t = nn.Linear(emb_dim, cout)
        self.n2 = GroupNorm32(GROUPS, cout)
        self.c2 = conv3(cout, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(F.silu(emb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return h + self.skip(x)


class Up(nn.Module):
    """Nearest-neighbour 2x upsampling, then a 3x3 convolution."""

    def __init__(self, ch):
        super().__init__()
        self.conv = conv3(ch, ch)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def sinusoidal(t, dim=TIME_DIM):
    """[sin(t w_i), cos(t w_i)] with w_i = 10000^(-i / (dim/2)), i < dim/2."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class UNetS(nn.Module):
    """eps_theta(x_t, t) for 1x28x28 images: conv_in, a ResBlock per level with a stride-2 convolution
    after every level but the last, a middle ResBlock, then per level a ResBlock on the concatenation
    with the matching skip and an Up after every level but the last, and GroupNorm, SiLU, conv_out."""

    def __init__(self, chs=(32, 64, 128), emb_dim=EMB_DIM):
        super().__init__()
        self.temb = nn.Sequential(nn.Linear(TIME_DIM, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = conv3(1, chs[0])
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c = chs[0]
        for level, ch in enumerate(chs):
            self.down.append(ResBlock(c, ch, emb_dim))
            c = ch
            if level < len(chs) - 1:
                self.downsample.append(conv3(ch, ch, stride=2))
        self.mid = ResBlock(c, c, emb_dim)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, ch in enumerate(reversed(chs)):
            self.up.append(ResBlock(c + ch, ch, emb_dim))
            c = ch
            if level < len(chs) - 1:
                self.upsample.append(Up(ch))
        self.out_norm = GroupNorm32(GROUPS, chs[0])
        self.out_conv = conv3(chs[0], 1)

    def forward(self, x, t):
        emb = self.temb(sinusoidal(t))
        h, skips = self.conv_in(x), []
        for level, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid(h, emb)
        for level, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if level < len(self.upsample):
                h = self.upsample[level](h)
        return self.out_conv(F.silu(self.out_norm(h)))


def median_seconds(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description="Time a UNet-S training step and sampling forward; one JSON line.")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--batch", type=int, default=128, help="training batch")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps (after 3 warmup)")
    ap.add_argument("--sample-batch", type=int, default=256, help="sampling forward batch")
    ap.add_argument("--sample-reps", type=int, default=5, help="timed sampling forwards (after 2 warmup)")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: torch.autocast on the CPU, GroupNorm in fp32")
    a = ap.parse_args()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = UNetS()
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T), 0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4)

    def train_step():
        x0 = torch.rand(a.batch, 1, 28, 28) * 2 - 1
        t = torch.randint(0, T, (a.batch,))
        eps = torch.randn_like(x0)
        ab = alpha_bar[t][:, None, None, None]
        with autocast:
            pred = model(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t)
        loss = F.mse_loss(pred.float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    train_s = median_seconds(train_step, a.steps, warmup=3)
    xs, ts = torch.randn(a.sample_batch, 1, 28, 28), torch.randint(0, T, (a.sample_batch,))

    def sample_forward():
        with torch.no_grad(), autocast:
            model(xs, ts)

    model.eval()
    sample_s = median_seconds(sample_forward, a.sample_reps, warmup=2)
    print(json.dumps({
        "engine": f"torch {torch.__version__}", "precision": a.precision, "threads": a.threads,
        "params": sum(p.numel() for p in model.parameters()),
        "train_img_s": round(a.batch / train_s, 1),
        "sample_img_s": round(a.sample_batch / sample_s, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
