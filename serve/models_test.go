package serve

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseModels(t *testing.T) {
	got, err := ParseModels([]string{"runs/a/", "x/b.safetensors", "c=runs/a"})
	if err != nil || fmt.Sprint(got) != "[{a runs/a/} {b x/b.safetensors} {c runs/a}]" {
		t.Fatalf("%v, %v", got, err)
	}
	if got, _ := ParseModels(nil); len(got) != 1 || got[0] != (ModelPath{"mnist", ""}) {
		t.Errorf("no models: %v, want the shipped mnist", got)
	}
	for args, want := range map[string]string{"=x": "want PATH or NAME=PATH", "a b=x": "want PATH", "x/a,y/a": "both named"} {
		if _, err := ParseModels(strings.Split(args, ",")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", args, err, want)
		}
	}
}
