package nn

import (
	"slices"
	"strings"
	"testing"
)

// ForData: the shipped shapes get the shipped configs unchanged, other shapes the adapted ones, and
// a shape a named config cannot take is an error naming sizes it can.
func TestForData(t *testing.T) {
	for _, tc := range []struct {
		name       string
		c, size    int
		want       string
		mult, attn []int
	}{
		{Auto, 1, 28, "unet-s", []int{1, 2, 4}, []int{}},
		{Auto, 3, 32, "unet-c32", []int{1, 2, 2, 2}, []int{16}},
		{Auto, 3, 28, "unet-c32-3levels", []int{1, 2, 2}, []int{14}},
		{Auto, 3, 64, "unet-c32", []int{1, 2, 2, 2}, []int{32}},
		{Auto, 3, 16, "unet-c32", []int{1, 2, 2, 2}, []int{8}},
		{Auto, 3, 18, "unet-c32-2levels", []int{1, 2}, []int{9}},
		{Auto, 1, 32, "unet-s", []int{1, 2, 4}, []int{}},
		{"unet-s", 3, 32, "unet-s", []int{1, 2, 4}, []int{}},
		{"unet-m", 3, 56, "unet-m", []int{1, 2, 2}, []int{14}},
	} {
		c, err := ForData(tc.name, tc.c, tc.size)
		if err != nil {
			t.Fatalf("%s %dx%d: %v", tc.name, tc.c, tc.size, err)
		}
		if c.Name != tc.want || c.InChannels != tc.c || c.OutChannels != tc.c || c.ImageSize != tc.size ||
			!slices.Equal(c.ChannelMult, tc.mult) || !slices.Equal(c.AttnResolutions, tc.attn) {
			t.Errorf("%s %dx%d: got %s in %d out %d size %d mult %v attn %v", tc.name, tc.c, tc.size,
				c.Name, c.InChannels, c.OutChannels, c.ImageSize, c.ChannelMult, c.AttnResolutions)
		}
	}
	// The shipped shapes are the named configs themselves.
	for name, shape := range map[string][2]int{"unet-s": {1, 28}, "unet-c32": {3, 32}} {
		want, _ := Named(name)
		got, err := ForData(name, shape[0], shape[1])
		if err != nil || string(got.JSON()) != string(want.JSON()) {
			t.Errorf("%s at its own shape: %s, %v; want %s", name, got.JSON(), err, want.JSON())
		}
	}
	for _, tc := range []struct {
		name    string
		c, size int
		msg     string
	}{
		{"unet-c32", 3, 28, "sizes divisible by 8 and at least 16: not 28 (try --size 24 or 32"},
		{"unet-c32", 3, 8, "not 8 (try --size 16"},
		{"unet-s", 1, 30, "divisible by 4 and at least 8: not 30 (try --size 28 or 32"},
		{Auto, 3, 17, "must be even"},
		{Auto, 1, 2, "must be even and at least 4"},
		{"unet-x", 1, 28, "unknown model config"},
		{Auto, 0, 28, "must be positive"},
	} {
		_, err := ForData(tc.name, tc.c, tc.size)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s %dx%d: error %v, want one containing %q", tc.name, tc.c, tc.size, err, tc.msg)
		}
	}
}
