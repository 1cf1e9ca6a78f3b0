package schedule

import (
	"math"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// TestHandChecked compares entries against values worked out by hand from each schedule's definition
// or quoted in the literature (Lin et al. 2023 quote sqrt(alpha_bar_T) = 0.006353 for DDPM's linear
// schedule and 0.068265 for Stable Diffusion's scaled-linear one at T = 1000).
func TestHandChecked(t *testing.T) {
	sig := func(u float64) float64 { return 1 / (1 + math.Exp(-u)) }
	cosf := func(t float64) float64 { c := math.Cos((t/1000 + 0.008) / 1.008 * math.Pi / 2); return c * c }
	tests := []struct {
		name  string
		what  string
		get   func(s *Schedule) float64
		want  float64
		relTo float64
	}{
		{"linear", "beta_0", func(s *Schedule) float64 { return s.Betas[0] }, 1e-4, 1e-15},
		{"linear", "beta_1", func(s *Schedule) float64 { return s.Betas[1] }, 1e-4 + 0.0199/999, 1e-12},
		{"linear", "beta_999", func(s *Schedule) float64 { return s.Betas[999] }, 0.02, 1e-15},
		{"linear", "alpha_bar_1", func(s *Schedule) float64 { return s.AlphaBar[1] }, 0.9999 * (1 - (1e-4 + 0.0199/999)), 1e-14},
		{"linear", "sqrt alpha_bar_999", func(s *Schedule) float64 { return math.Sqrt(s.AlphaBar[999]) }, 0.006353, 1e-3},
		{"scaled-linear", "beta_0", func(s *Schedule) float64 { return s.Betas[0] }, 0.00085, 1e-14},
		{"scaled-linear", "beta_999", func(s *Schedule) float64 { return s.Betas[999] }, 0.012, 1e-14},
		{"scaled-linear", "sqrt alpha_bar_999", func(s *Schedule) float64 { return math.Sqrt(s.AlphaBar[999]) }, 0.068265, 1e-4},
		{"cosine", "alpha_bar_0", func(s *Schedule) float64 { return s.AlphaBar[0] }, cosf(1) / cosf(0), 1e-13},
		{"cosine", "alpha_bar_499", func(s *Schedule) float64 { return s.AlphaBar[499] }, cosf(500) / cosf(0), 1e-12},
		{"cosine", "beta_999 (clipped)", func(s *Schedule) float64 { return s.Betas[999] }, 0.999, 1e-15},
		{"sigmoid", "beta_0", func(s *Schedule) float64 { return s.Betas[0] }, 1.4920520081703e-04, 1e-12},
		{"sigmoid", "beta_999", func(s *Schedule) float64 { return s.Betas[999] }, sig(6)*0.0199 + 1e-4, 1e-14},
	}
	for _, tc := range tests {
		s, err := New(tc.name, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.get(s); !near(got, tc.want, tc.relTo) {
			t.Errorf("%s %s = %.15g, want %.15g", tc.name, tc.what, got, tc.want)
		}
	}
	// Odd T puts the sigmoid's midpoint on a step: sigmoid(0) = 1/2.
	s, _ := New("sigmoid", 101, false)
	if !near(s.Betas[50], 0.5*0.0199+1e-4, 1e-14) {
		t.Errorf("sigmoid T=101 beta_50 = %v, want 0.01005", s.Betas[50])
	}
}

// TestInvariants checks what every schedule must satisfy, zero-SNR or not.
func TestInvariants(t *testing.T) {
	for _, name := range Names() {
		for _, T := range []int{1, 2, 10, 1000} {
			for _, z := range []bool{false, true} {
				if z && T < 2 {
					continue
				}
				s, err := New(name, T, z)
				if err != nil {
					t.Fatalf("%s T=%d zero=%v: %v", name, T, z, err)
				}
				prod := 1.0
				for i := 0; i < T; i++ {
					b := s.Betas[i]
					if !(b > 0 && b <= 1) {
						t.Fatalf("%s T=%d zero=%v: beta_%d = %v not in (0,1]", name, T, z, i, b)
					}
					if !near(s.Alphas[i], 1-b, 1e-15) {
						t.Fatalf("%s: alpha_%d = %v != 1-beta", name, i, s.Alphas[i])
					}
					prod *= 1 - b
					if !near(s.AlphaBar[i], prod, 1e-9) {
						t.Fatalf("%s T=%d zero=%v: alpha_bar_%d = %v, product of alphas = %v", name, T, z, i, s.AlphaBar[i], prod)
					}
					if i > 0 && s.AlphaBar[i] > s.AlphaBar[i-1] {
						t.Fatalf("%s: alpha_bar increases at %d", name, i)
					}
				}
			}
		}
	}
}

func TestZeroSNR(t *testing.T) {
	for _, name := range Names() {
		plain, _ := New(name, 1000, false)
		s, err := New(name, 1000, true)
		if err != nil {
			t.Fatal(err)
		}
		if s.AlphaBar[999] != 0 || s.Betas[999] != 1 {
			t.Errorf("%s zero-SNR: alpha_bar_999 = %v, beta_999 = %v; want 0 and 1", name, s.AlphaBar[999], s.Betas[999])
		}
		if !near(s.AlphaBar[0], plain.AlphaBar[0], 1e-12) {
			t.Errorf("%s zero-SNR: alpha_bar_0 = %v, want unchanged %v", name, s.AlphaBar[0], plain.AlphaBar[0])
		}
		// sqrt(alpha_bar) is an affine map of the original: check at a middle step by hand.
		a0, aT, am := math.Sqrt(plain.AlphaBar[0]), math.Sqrt(plain.AlphaBar[999]), math.Sqrt(plain.AlphaBar[500])
		want := (am - aT) * a0 / (a0 - aT)
		if !near(math.Sqrt(s.AlphaBar[500]), want, 1e-12) {
			t.Errorf("%s zero-SNR: sqrt alpha_bar_500 = %v, want %v", name, math.Sqrt(s.AlphaBar[500]), want)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		T    int
		zero bool
		msg  string
	}{
		{"bogus", 1000, false, "unknown schedule"},
		{"linear", 0, false, "timesteps 0"},
		{"linear", -5, false, "timesteps -5"},
		{"cosine", 1, true, "zero-SNR"},
	}
	for _, tc := range tests {
		_, err := New(tc.name, tc.T, tc.zero)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("New(%q, %d, %v) error = %v, want containing %q", tc.name, tc.T, tc.zero, err, tc.msg)
		}
	}
}

func TestLinspaceLikeNumpy(t *testing.T) {
	got := linspace(0, 1, 5)
	for i, w := range []float64{0, 0.25, 0.5, 0.75, 1} {
		if got[i] != w {
			t.Errorf("linspace(0,1,5)[%d] = %v, want %v", i, got[i], w)
		}
	}
	if g := linspace(3, 7, 1); len(g) != 1 || g[0] != 3 {
		t.Errorf("linspace(3,7,1) = %v, want [3]", g)
	}
}

// TestTimestepsBounded: a T from a flag, a config or a checkpoint's metadata above MaxTimesteps is
// an error, before any table is allocated.
func TestTimestepsBounded(t *testing.T) {
	if _, err := New("linear", MaxTimesteps+1, false); err == nil {
		t.Fatal("T above the limit accepted")
	}
	if _, err := New("linear", 1_000_000_000, false); err == nil {
		t.Fatal("T = 1e9 accepted")
	}
}
