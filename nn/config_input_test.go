package nn_test

import (
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/nn"
)

// TestParseConfigTrailingData: a model config file holds one JSON object; a second one pasted after
// it, or a stray brace, is an error (Decode stopped at the first and ignored the rest), while
// trailing whitespace is fine.
func TestParseConfigTrailingData(t *testing.T) {
	cfg, _ := nn.Named("unet-s")
	js := string(cfg.JSON())
	for _, tail := range []string{` {"base_channels": 64}`, "}", "x"} {
		if _, err := nn.ParseConfig([]byte(js + tail)); err == nil || !strings.Contains(err.Error(), "trailing data after the JSON object") {
			t.Errorf("config + %q: %v", tail, err)
		}
	}
	if _, err := nn.ParseConfig([]byte(js + " \n\t")); err != nil {
		t.Errorf("config + whitespace: %v", err)
	}
}
