package checkpoint

import (
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

func TestSetup(t *testing.T) {
	s, p, err := Setup(map[string]string{})
	if err != nil || s.Name != "linear" || s.T != 1000 || s.ZeroSNR || p != diffusion.Eps {
		t.Errorf("defaults: %v %v %v", s, p, err)
	}
	s, p, err = Setup(map[string]string{"schedule": "cosine", "timesteps": "30", "zero_snr": "true", "objective": "x0"})
	if err != nil || s.Name != "cosine" || s.T != 30 || !s.ZeroSNR || p != diffusion.X0 {
		t.Errorf("keys: %v %v %v", s, p, err)
	}
	for _, meta := range []map[string]string{{"timesteps": "x"}, {"zero_snr": "maybe"}, {"objective": "score"}, {"schedule": "quadratic"}} {
		if _, _, err := Setup(meta); err == nil {
			t.Errorf("%v accepted", meta)
		}
	}
}
