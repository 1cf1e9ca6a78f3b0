package schedule_test

import (
	"fmt"

	"github.com/ddpm-go/ddpm/schedule"
)

// The linear schedule of DDPM leaves about 0.6% of the signal's amplitude at the last step; the
// zero-SNR rescaling removes it.
func Example() {
	s, err := schedule.New("linear", 1000, false)
	if err != nil {
		panic(err)
	}
	z, _ := schedule.New("linear", 1000, true)
	fmt.Printf("beta_0=%.4g beta_999=%.4g alpha_bar_999=%.4g zero-SNR alpha_bar_999=%g\n",
		s.Betas[0], s.Betas[999], s.AlphaBar[999], z.AlphaBar[999])
	// Output: beta_0=0.0001 beta_999=0.02 alpha_bar_999=4.036e-05 zero-SNR alpha_bar_999=0
}
