package plot

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"strings"
	"testing"
)

func decode(t *testing.T, b []byte) *image.RGBA {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	rgba := image.NewRGBA(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			rgba.Set(x, y, img.At(x, y))
		}
	}
	return rgba
}

// TestLinesDrawsWhereTheDataIs: a horizontal series at y = 2 on an axis from 0 to 4 is drawn in its
// palette colour at the middle row of the plotting area, and nowhere near the bottom.
func TestLinesDrawsWhereTheDataIs(t *testing.T) {
	var buf bytes.Buffer
	opt := Options{Title: "t", XLabel: "x", YLabel: "y", Width: 400, Height: 300, YMin: 0, YMax: 4}
	if err := Lines(&buf, opt, Series{X: []float64{0, 10}, Y: []float64{2, 2}}); err != nil {
		t.Fatal(err)
	}
	img := decode(t, buf.Bytes())
	if img.Bounds().Dx() != 400 || img.Bounds().Dy() != 300 {
		t.Fatalf("size %v, want 400x300", img.Bounds())
	}
	midY := (marginTop + 300 - marginBottom - 1) / 2
	midX := (marginLeft + 400 - marginRight) / 2
	found := false
	for y := midY - 2; y <= midY+2; y++ {
		if img.RGBAAt(midX, y) == Palette[0] {
			found = true
		}
	}
	if !found {
		t.Errorf("no line colour near (%d, %d)", midX, midY)
	}
	if img.RGBAAt(midX, 300-marginBottom-10) == Palette[0] {
		t.Error("line colour near the bottom of the plot")
	}
}

// TestScatterDensity: the heat map is darkest at the density's peak and white far from it, and an
// isolated point leaves a dark mark.
func TestScatterDensity(t *testing.T) {
	var buf bytes.Buffer
	opt := Options{Width: 300, Height: 300, XMin: -2, XMax: 2, YMin: -2, YMax: 2}
	gauss := func(x, y float64) float64 { return math.Exp(-(x*x + y*y) * 4) }
	if err := ScatterDensity(&buf, opt, []float64{1.5}, []float64{1.5}, gauss); err != nil {
		t.Fatal(err)
	}
	img := decode(t, buf.Bytes())
	f, _ := newFigure(opt, 0, 0, 0, 0)
	cx, cy := f.px(0, 0)
	far := img.RGBAAt(f.x0+2, f.y1-3)
	peak := img.RGBAAt(int(cx), int(cy))
	if far.R < 250 || far.G < 250 || far.B < 250 || peak.G > 20 {
		t.Errorf("heat map: far %v (want white), peak %v (want dark red)", far, peak)
	}
	px, py := f.px(1.5, 1.5)
	if c := img.RGBAAt(int(math.Round(px)), int(math.Round(py))); c.R > 200 {
		t.Errorf("point pixel %v, want dark", c)
	}
}

func TestErrors(t *testing.T) {
	var buf bytes.Buffer
	tests := []struct {
		name string
		err  error
		msg  string
	}{
		{"no series", Lines(&buf, Options{}), "no series"},
		{"ragged series", Lines(&buf, Options{}, Series{Name: "a", X: []float64{1, 2}, Y: []float64{1}}), "2 x and 1 y"},
		{"tiny", Lines(&buf, Options{Width: 10, Height: 10}, Series{X: []float64{1}, Y: []float64{1}}), "size"},
		{"log of zero range", Lines(&buf, Options{LogY: true, YMin: 0, YMax: 1}, Series{X: []float64{1}, Y: []float64{1}}), "YMin > 0"},
		{"no finite data", Lines(&buf, Options{}, Series{X: []float64{math.NaN()}, Y: []float64{1}}), "no finite data"},
		{"scatter ragged", ScatterDensity(&buf, Options{}, []float64{1}, nil, nil), "1 x and 0 y"},
	}
	for _, tc := range tests {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want containing %q", tc.name, tc.err, tc.msg)
		}
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ span, want float64 }{{10, 2}, {1, 0.2}, {7, 2}, {100, 20}, {0.03, 0.005}} {
		if got := niceStep(tc.span, 6); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("niceStep(%v, 6) = %v, want %v", tc.span, got, tc.want)
		}
	}
}

// TestLogTicks: log axes are labelled at round data values, denser when the axis spans fewer decades.
func TestLogTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64 // data units
		want   []float64
	}{
		{10, 1000, []float64{10, 30, 100, 300, 1000}},
		{1.5, 40, []float64{2, 5, 10, 20}},
		{3.5, 5.5, []float64{4, 5}},
		{1, 1e6, []float64{1, 100, 1e4, 1e6}},
	} {
		ticks := logTicks(math.Log10(tc.lo), math.Log10(tc.hi))
		var got []float64
		for _, v := range ticks {
			got = append(got, math.Round(math.Pow(10, v)*1e6)/1e6)
		}
		if len(got) != len(tc.want) {
			t.Errorf("logTicks(%v, %v) = %v, want %v", tc.lo, tc.hi, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("logTicks(%v, %v) = %v, want %v", tc.lo, tc.hi, got, tc.want)
				break
			}
		}
	}
}

// TestLogXMarkers: on log-log axes the point (100, 10) of a series spanning (10, 1)..(1000, 100) is
// at the centre of the plotting area, and with markers a one-point series still shows.
func TestLogXMarkers(t *testing.T) {
	var buf bytes.Buffer
	opt := Options{Width: 400, Height: 300, LogX: true, LogY: true, XMin: 10, XMax: 1000, YMin: 1, YMax: 100, Markers: true}
	if err := Lines(&buf, opt, Series{Name: "a", X: []float64{10, 100, 1000}, Y: []float64{1, 10, 100}},
		Series{Name: "b", X: []float64{1000}, Y: []float64{1}}); err != nil {
		t.Fatal(err)
	}
	img := decode(t, buf.Bytes())
	f, _ := newFigure(opt, 0, 0, 0, 0)
	cx, cy := f.px(2, 1)
	if c := img.RGBAAt(int(math.Round(cx)), int(math.Round(cy))); c != Palette[0] {
		t.Errorf("centre pixel %v, want the first series' colour", c)
	}
	bx, by := f.px(3, 0)
	if c := img.RGBAAt(int(math.Round(bx))-2, int(math.Round(by))-2); c != Palette[1] {
		t.Errorf("one-point series: pixel %v, want its marker", c)
	}
	if err := Lines(&buf, Options{LogX: true, XMin: -1, XMax: 1}, Series{X: []float64{1}, Y: []float64{1}}); err == nil || !strings.Contains(err.Error(), "XMin > 0") {
		t.Errorf("log x with XMin -1: error %v", err)
	}
}
