// Package layout holds the test of the import rules docs/layout.md states.
package layout

import (
	"os/exec"
	"strings"
	"testing"
)

// The diffusion math and the network meet only in generate (and train): diffusion/ and schedule/
// must not depend on the network (nn, tensor, engine), nor nn and tensor on the diffusion math, so
// either side can be replaced or tested alone. serve/deps_test.go keeps training out of serving.
func TestImportRules(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	const mod = "github.com/ddpm-go/ddpm/"
	for _, rule := range []struct {
		pkgs, banned []string
	}{
		{[]string{"diffusion", "schedule"}, []string{"nn", "tensor", "tensor/dnnl", "engine", "checkpoint", "train", "serve"}},
		{[]string{"nn", "tensor", "tensor/dnnl"}, []string{"diffusion", "schedule", "train", "generate", "serve"}},
	} {
		args := []string{"list", "-deps"}
		for _, p := range rule.pkgs {
			args = append(args, mod+p)
		}
		out, err := exec.Command(goTool, args...).Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		for _, b := range rule.banned {
			if deps[mod+b] {
				t.Errorf("%v depend on %s", rule.pkgs, b)
			}
		}
	}
}
