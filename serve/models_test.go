package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/tensor"
)

func TestParseModels(t *testing.T) {
	got, err := ParseModels([]string{"runs/a/", "x/b.safetensors", "c=runs/a"})
	if err != nil || fmt.Sprint(got) != "[{a runs/a/} {b x/b.safetensors} {c runs/a}]" {
		t.Fatalf("%v, %v", got, err)
	}
	if got, _ := ParseModels(nil); fmt.Sprint(got) != "[{mnist } {mnist-instant }]" {
		t.Errorf("no models: %v, want the shipped mnist and mnist-instant", got)
	}
	for args, want := range map[string]string{"=x": "want PATH or NAME=PATH", "a b=x": "want PATH", "x/a,y/a": "both named"} {
		if _, err := ParseModels(strings.Split(args, ",")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", args, err, want)
		}
	}
}

// With no models named, the server offers the two compiled into the binary: the class-conditional
// MNIST model and the instant option, the 4-step student, which a request without steps samples
// over its own grid.
func TestShippedModels(t *testing.T) {
	paths, err := ParseModels(nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, bes, err := LoadModels(paths, 1, func() (tensor.Backend, error) { return tensor.NewReference(1), nil }, true, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(bes) != 1 {
		t.Fatalf("%d backends for one worker", len(bes))
	}
	_, ts := startServer(t, ms, Options{})
	_, b := get(t, ts.URL+"/v1/models")
	var mr ModelsResponse
	if err := json.Unmarshal(b, &mr); err != nil {
		t.Fatal(err)
	}
	if len(mr.Models) != 2 || mr.Models[0].Name != "mnist" || mr.Models[0].NumClasses != 10 ||
		mr.Models[1].Name != "mnist-instant" || mr.Models[1].DistilledSteps != 4 || mr.Models[1].NumClasses != 0 {
		t.Fatalf("models %s", b)
	}
	resp, b := post(t, ts.URL, `{"model": "mnist-instant", "n": 1, "seed": 1}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if h := resp.Header.Get("X-Ddpm-Sampler"); h != "ddim-4 eta=0 distilled" || resp.Header.Get("Warning") != "" {
		t.Errorf("instant option sampled by %q (warning %q), want its own 4-step grid", h, resp.Header.Get("Warning"))
	}
	if _, err := generate.LoadShippedNamed("nope", tensor.NewReference(1)); err == nil || !strings.Contains(err.Error(), "mnist-instant") {
		t.Errorf("unknown shipped model: %v", err)
	}
}
