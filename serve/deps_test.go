package serve

import (
	"os/exec"
	"strings"
	"testing"
)

// Sampling and serving load models through package checkpoint; linking the trainer would pull data
// fetching (os/exec, npm, apt) into every server. The import graph says whether that still holds.
func TestNoTrainingDependency(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/ddpm-go/ddpm/serve", "github.com/ddpm-go/ddpm/generate", "github.com/ddpm-go/ddpm/cmd/loadtest").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/ddpm-go/ddpm/train" || pkg == "github.com/ddpm-go/ddpm/data" {
			t.Errorf("serve, generate or loadtest depends on %s", pkg)
		}
	}
}
