package nn_test

import (
	"testing"

	"github.com/ddpm-go/ddpm/nn"
)

// TestForwardFLOPs checks UNet-S's count against the sum written out layer by layer from the
// architecture (3x3 convolutions 2*Cin*Cout*9*H*W each, the 1x1 skips, the time MLP and the eight
// per-block time projections): 398,755,840 FLOPs.
func TestForwardFLOPs(t *testing.T) {
	cfg, err := nn.Named("unet-s")
	if err != nil {
		t.Fatal(err)
	}
	f, err := nn.ForwardFLOPs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f != 398755840 {
		t.Fatalf("unet-s forward %.0f FLOPs, want 398755840", f)
	}
}
