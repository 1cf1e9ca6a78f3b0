// Package deploy holds the deployment manifests; its test keeps them consistent with the CLI.
package deploy

import (
	"os"
	"slices"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"
)

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Env     []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Resources struct {
		Limits map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type replica struct {
	Replicas int `yaml:"replicas"`
	Template struct {
		Spec struct {
			Containers []container `yaml:"containers"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type mpiJob struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Spec       struct {
		SlotsPerWorker    int                `yaml:"slotsPerWorker"`
		MPIImplementation string             `yaml:"mpiImplementation"`
		MPIReplicaSpecs   map[string]replica `yaml:"mpiReplicaSpecs"`
	} `yaml:"spec"`
}

func (c container) env(name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// flag is the value after name in args, or "".
func flag(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestMPIJob checks what must agree in deploy/mpijob.yaml: the kind and API of the MPI Operator,
// one launcher, -np = workers x slotsPerWorker, the launcher running `ddpm train` with --threads
// equal to OMP_NUM_THREADS on the workers, at most the worker's CPU limit x slots, and a batch
// that splits over the ranks; launcher and workers on one image.
func TestMPIJob(t *testing.T) {
	b, err := os.ReadFile("mpijob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var j mpiJob
	if err := yaml.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.APIVersion != "kubeflow.org/v2beta1" || j.Kind != "MPIJob" || j.Spec.MPIImplementation != "OpenMPI" {
		t.Fatalf("apiVersion %q kind %q implementation %q", j.APIVersion, j.Kind, j.Spec.MPIImplementation)
	}
	l, w := j.Spec.MPIReplicaSpecs["Launcher"], j.Spec.MPIReplicaSpecs["Worker"]
	if l.Replicas != 1 || len(l.Template.Spec.Containers) != 1 || w.Replicas < 1 || len(w.Template.Spec.Containers) != 1 {
		t.Fatalf("want 1 launcher and workers with one container each: %+v %+v", l, w)
	}
	lc, wc := l.Template.Spec.Containers[0], w.Template.Spec.Containers[0]
	if lc.Image == "" || lc.Image != wc.Image {
		t.Fatalf("launcher image %q, worker image %q", lc.Image, wc.Image)
	}
	cmd := lc.Command
	if len(cmd) == 0 || cmd[0] != "mpirun" {
		t.Fatalf("launcher command %v does not start with mpirun", cmd)
	}
	i := slices.Index(cmd, "ddpm")
	if i < 0 || i+1 >= len(cmd) || cmd[i+1] != "train" {
		t.Fatalf("launcher command %v does not run ddpm train", cmd)
	}
	np, err := strconv.Atoi(flag(cmd[:i], "-np"))
	if err != nil || np != w.Replicas*j.Spec.SlotsPerWorker {
		t.Fatalf("-np %q, workers %d x slotsPerWorker %d", flag(cmd[:i], "-np"), w.Replicas, j.Spec.SlotsPerWorker)
	}
	threads := flag(cmd[i:], "--threads")
	if threads == "" || wc.env("OMP_NUM_THREADS") != threads || lc.env("OMP_NUM_THREADS") != threads || flag(cmd[:i], "-x") == "" {
		t.Fatalf("--threads %q, OMP_NUM_THREADS %q on workers and %q on the launcher (exported with -x)", threads, wc.env("OMP_NUM_THREADS"), lc.env("OMP_NUM_THREADS"))
	}
	n, _ := strconv.Atoi(threads)
	if cpu, err := strconv.Atoi(wc.Resources.Limits["cpu"]); err != nil || n*j.Spec.SlotsPerWorker > cpu {
		t.Fatalf("%d slots x %s threads on a worker limited to %q CPUs", j.Spec.SlotsPerWorker, threads, wc.Resources.Limits["cpu"])
	}
	if batch, err := strconv.Atoi(flag(cmd[i:], "--batch")); err != nil || batch%np != 0 {
		t.Fatalf("--batch %q does not split over %d ranks", flag(cmd[i:], "--batch"), np)
	}
}
