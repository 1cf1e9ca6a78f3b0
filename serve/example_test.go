package serve_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/nn"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/serve"
	"github.com/ddpm-go/ddpm/tensor"
)

// A server over one model with one worker: POST a request, get a PNG grid; an invalid parameter
// gets a 400 naming it. (A real server loads its models with generate.Load, one copy per worker.)
func ExampleNew() {
	cfg := nn.Config{Name: "tiny", ImageSize: 8, InChannels: 1, OutChannels: 1, BaseChannels: 8, ChannelMult: []int{1, 2},
		ResBlocks: 1, AttnResolutions: []int{}, Heads: 1, TimeEmbedDim: 16, SinusoidalDim: 8, Groups: 4}
	net, err := nn.New(cfg, tensor.NewReference(1), 1) // random weights: the images are noise
	if err != nil {
		panic(err)
	}
	sched, _ := schedule.New("linear", 100, false)
	m := &generate.Model{Model: checkpoint.Model{Net: net, Schedule: sched, Prediction: diffusion.Eps, Source: "example"}}

	srv, err := serve.New([]serve.Model{{Name: "tiny", Copies: []*generate.Model{m}}}, serve.Options{MaxN: 8})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	for _, body := range []string{`{"sampler":"ddim","steps":10,"n":4,"seed":1}`, `{"n":100}`} {
		resp, err := http.Post(ts.URL+"/v1/samples", "application/json", strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Ddpm-Sampler"))
		} else {
			fmt.Print(resp.StatusCode, " ", string(b))
		}
	}
	// Output:
	// 200 image/png ddim-10 eta=0 linspace
	// 400 {
	//   "error": "n: 100 outside [1, 8] (the server's --max-n)",
	//   "field": "n"
	// }
}
