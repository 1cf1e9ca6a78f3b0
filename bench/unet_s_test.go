package bench

import (
	"os"
	"os/exec"
	"testing"
)

// TestUNetSTorch runs unet_s_check.py: the PyTorch UNet-S built from seed 0 has the state_dict names,
// shapes and weights of nn/testdata and reproduces the fixture's output, loss and gradients. With
// $UNET_S_REFERENCE naming another PyTorch UNet-S file, both are built from the same seed and must
// agree in every weight and output. Skipped without /usr/bin/python3 and torch, or with -short.
func TestUNetSTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skip("no python3 with torch")
	}
	args := []string{"unet_s_check.py"}
	if ref := os.Getenv("UNET_S_REFERENCE"); ref != "" {
		if _, err := os.Stat(ref); err != nil {
			t.Fatalf("UNET_S_REFERENCE: %v", err)
		}
		args = append(args, "--reference", ref)
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	t.Logf("%s", out)
}
