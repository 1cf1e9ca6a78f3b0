// Package bench holds the PyTorch UNet-S that `ddpm bench` is measured against (unet_s_torch.py, the
// DDPM paper's UNet at UNet-S's size), the script that checks it (unet_s_check.py) and bench/compare,
// which runs both programs side by side. It has no Go API; its test runs the check.
package bench
