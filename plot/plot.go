// Package plot draws the project's few figures as PNG in pure Go: line plots (loss curves, FID against
// steps) and scatter plots over a heat map (samples over a known density). It exists so the commands
// can write a picture without Python or a plotting service; it is deliberately small, with fixed
// styling and automatic axes.
package plot

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"os"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Options are a figure's labels, size and axis ranges. A range with Min >= Max is chosen from the data.
type Options struct {
	Title, XLabel, YLabel string
	Width, Height         int // pixels; default 640 x 480
	XMin, XMax            float64
	YMin, YMax            float64
	LogX, LogY            bool // logarithmic axes (values <= 0 are skipped), ticks labelled in data units
	Markers               bool // mark every point of Lines' series, so single points and kinks show
}

// Series is one named line of a line plot.
type Series struct {
	Name string
	X, Y []float64
}

// Palette is the colour cycle of Lines' series (matplotlib's "tab10").
var Palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255},
	{140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
}

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{225, 225, 225, 255}
)

const (
	marginLeft, marginRight, marginTop, marginBottom = 70, 20, 30, 50
	charW, lineH                                     = 7, 13 // basicfont.Face7x13
)

// figure is a canvas with a plotting area mapped to data coordinates.
type figure struct {
	img                    *image.RGBA
	opt                    Options
	x0, y0, x1, y1         int // plotting area in pixels: [x0, x1) x [y0, y1)
	xmin, xmax, ymin, ymax float64
	noGrid                 bool
}

func newFigure(opt Options, xmin, xmax, ymin, ymax float64) (*figure, error) {
	if opt.Width == 0 {
		opt.Width = 640
	}
	if opt.Height == 0 {
		opt.Height = 480
	}
	if opt.Width < 200 || opt.Height < 150 || opt.Width > 8000 || opt.Height > 8000 {
		return nil, fmt.Errorf("plot: size %dx%d outside 200x150 .. 8000x8000", opt.Width, opt.Height)
	}
	if opt.XMin < opt.XMax {
		xmin, xmax = opt.XMin, opt.XMax
		if opt.LogX {
			if xmin <= 0 {
				return nil, fmt.Errorf("plot: log x axis needs XMin > 0, got %v", xmin)
			}
			xmin, xmax = math.Log10(xmin), math.Log10(xmax)
		}
	}
	if opt.YMin < opt.YMax {
		ymin, ymax = opt.YMin, opt.YMax
		if opt.LogY {
			if ymin <= 0 {
				return nil, fmt.Errorf("plot: log y axis needs YMin > 0, got %v", ymin)
			}
			ymin, ymax = math.Log10(ymin), math.Log10(ymax)
		}
	}
	for _, v := range []float64{xmin, xmax, ymin, ymax} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("plot: no finite data to set the axes")
		}
	}
	if xmin == xmax {
		xmin, xmax = xmin-0.5, xmax+0.5
	}
	if ymin == ymax {
		ymin, ymax = ymin-0.5, ymax+0.5
	}
	f := &figure{
		img: image.NewRGBA(image.Rect(0, 0, opt.Width, opt.Height)), opt: opt,
		x0: marginLeft, y0: marginTop, x1: opt.Width - marginRight, y1: opt.Height - marginBottom,
		xmin: xmin, xmax: xmax, ymin: ymin, ymax: ymax,
	}
	draw.Draw(f.img, f.img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	return f, nil
}

// px maps data coordinates (already log10 on a log axis) to pixel coordinates.
func (f *figure) px(x, y float64) (float64, float64) {
	return float64(f.x0) + (x-f.xmin)/(f.xmax-f.xmin)*float64(f.x1-f.x0-1),
		float64(f.y1-1) - (y-f.ymin)/(f.ymax-f.ymin)*float64(f.y1-f.y0-1)
}

// data maps a pixel centre back to data coordinates.
func (f *figure) data(px, py int) (float64, float64) {
	return f.xmin + (float64(px)-float64(f.x0))/float64(f.x1-f.x0-1)*(f.xmax-f.xmin),
		f.ymin + (float64(f.y1-1)-float64(py))/float64(f.y1-f.y0-1)*(f.ymax-f.ymin)
}

func (f *figure) inside(x, y int) bool { return x >= f.x0 && x < f.x1 && y >= f.y0 && y < f.y1 }

// blend paints c with opacity alpha over pixel (x, y).
func (f *figure) blend(x, y int, c color.RGBA, alpha float64) {
	if !(image.Point{x, y}.In(f.img.Rect)) {
		return
	}
	i := f.img.PixOffset(x, y)
	p := f.img.Pix[i : i+3 : i+3]
	p[0] = uint8(float64(p[0])*(1-alpha) + float64(c.R)*alpha + 0.5)
	p[1] = uint8(float64(p[1])*(1-alpha) + float64(c.G)*alpha + 0.5)
	p[2] = uint8(float64(p[2])*(1-alpha) + float64(c.B)*alpha + 0.5)
}

// line draws a segment of the given width between pixel positions, clipped to the plotting area.
func (f *figure) line(ax, ay, bx, by float64, c color.RGBA, width int) {
	n := int(math.Max(math.Abs(bx-ax), math.Abs(by-ay))) + 1
	for i := 0; i <= n; i++ {
		u := float64(i) / float64(n)
		x, y := ax+u*(bx-ax), ay+u*(by-ay)
		for dx := -(width - 1) / 2; dx <= width/2; dx++ {
			for dy := -(width - 1) / 2; dy <= width/2; dy++ {
				xi, yi := int(math.Round(x))+dx, int(math.Round(y))+dy
				if f.inside(xi, yi) {
					f.img.SetRGBA(xi, yi, c)
				}
			}
		}
	}
}

// text draws s with its top-left corner at (x, y).
func (f *figure) text(x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: f.img, Src: image.NewUniform(c), Face: basicfont.Face7x13,
		Dot: fixed.P(x, y+basicfont.Face7x13.Ascent)}
	d.DrawString(s)
}

// vtext draws s rotated a quarter turn anticlockwise, centred vertically at y, its left edge at x.
func (f *figure) vtext(x, y int, s string) {
	w := len(s) * charW
	tmp := image.NewRGBA(image.Rect(0, 0, w, lineH))
	draw.Draw(tmp, tmp.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	d := font.Drawer{Dst: tmp, Src: image.NewUniform(black), Face: basicfont.Face7x13, Dot: fixed.P(0, basicfont.Face7x13.Ascent)}
	d.DrawString(s)
	for i := 0; i < w; i++ {
		for j := 0; j < lineH; j++ {
			if c := tmp.RGBAAt(i, j); c != white {
				f.img.SetRGBA(x+j, y+w/2-i, c)
			}
		}
	}
}

// niceStep returns a step of 1, 2 or 5 times a power of ten giving about n intervals over span.
func niceStep(span float64, n int) float64 {
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func formatTick(v float64) string {
	if math.Abs(v) < 1e-12 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// logTicks returns tick positions (log10 values) for a log axis over [lo, hi] (log10 units): every
// integer (and 1.5) times a power of ten on less than a factor of 5, 1, 2 and 5 times powers of ten
// when the axis spans under two decades, 1 and 10 times powers of ten (1, 10, 100, 1000
// and the like) up to four decades, powers of ten beyond.
func logTicks(lo, hi float64) []float64 {
	mult := []float64{1}
	switch span := hi - lo; {
	case span < 0.7:
		mult = []float64{1, 1.5, 2, 3, 4, 5, 6, 7, 8}
	case span < 2:
		mult = []float64{1, 2, 5}
	case span < 4:
		mult = []float64{1, 3}
	}
	step := math.Max(1, math.Round(niceStep(hi-lo, 5)))
	var ticks []float64
	for d := math.Floor(lo); d <= math.Ceil(hi); d += step {
		for _, m := range mult {
			if v := d + math.Log10(m); v >= lo-1e-9 && v <= hi+1e-9 {
				ticks = append(ticks, v)
			}
		}
	}
	return ticks
}

// linearTicks returns multiples of a nice step covering [lo, hi].
func linearTicks(lo, hi float64, n int) []float64 {
	st := niceStep(hi-lo, n)
	var ticks []float64
	for v := math.Ceil(lo/st) * st; v <= hi+st*1e-9; v += st {
		ticks = append(ticks, v)
	}
	return ticks
}

// axes draws the grid, ticks, frame, labels and title.
func (f *figure) axes() {
	xticks := linearTicks(f.xmin, f.xmax, 6)
	if f.opt.LogX {
		xticks = logTicks(f.xmin, f.xmax)
	}
	for _, v := range xticks {
		px, _ := f.px(v, f.ymin)
		if !f.noGrid {
			f.line(px, float64(f.y0), px, float64(f.y1-1), grey, 1)
		}
		f.line(px, float64(f.y1-5), px, float64(f.y1-1), black, 1)
		s := formatTick(v)
		if f.opt.LogX {
			s = formatTick(math.Pow(10, v))
		}
		f.text(int(px)-len(s)*charW/2, f.y1+4, s, black)
	}
	yticks := linearTicks(f.ymin, f.ymax, 5)
	if f.opt.LogY {
		yticks = logTicks(f.ymin, f.ymax)
	}
	for _, v := range yticks {
		_, py := f.px(f.xmin, v)
		if !f.noGrid {
			f.line(float64(f.x0), py, float64(f.x1-1), py, grey, 1)
		}
		f.line(float64(f.x0), py, float64(f.x0+4), py, black, 1)
		s := formatTick(v)
		if f.opt.LogY {
			s = formatTick(math.Pow(10, v))
		}
		f.text(f.x0-6-len(s)*charW, int(py)-lineH/2, s, black)
	}
	f.frame()
	f.text((f.x0+f.x1)/2-len(f.opt.XLabel)*charW/2, f.y1+22, f.opt.XLabel, black)
	f.vtext(8, (f.y0+f.y1)/2, f.opt.YLabel)
	f.text((f.opt.Width-len(f.opt.Title)*charW)/2, 8, f.opt.Title, black)
}

func (f *figure) frame() {
	for x := f.x0 - 1; x <= f.x1; x++ {
		f.img.SetRGBA(x, f.y0-1, black)
		f.img.SetRGBA(x, f.y1, black)
	}
	for y := f.y0 - 1; y <= f.y1; y++ {
		f.img.SetRGBA(f.x0-1, y, black)
		f.img.SetRGBA(f.x1, y, black)
	}
}

// Lines draws each series as a line in its palette colour, with a legend of the named ones, and
// writes the PNG to w. Points with a non-finite coordinate (or y <= 0 on a log axis) break the line.
func Lines(w io.Writer, opt Options, series ...Series) error {
	if len(series) == 0 {
		return fmt.Errorf("plot: no series")
	}
	logOf := func(on bool) func(float64) float64 {
		return func(v float64) float64 {
			if !on {
				return v
			}
			if v <= 0 {
				return math.NaN()
			}
			return math.Log10(v)
		}
	}
	tx, ty := logOf(opt.LogX), logOf(opt.LogY)
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range series {
		if len(s.X) != len(s.Y) {
			return fmt.Errorf("plot: series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
		}
		for i := range s.X {
			x, y := tx(s.X[i]), ty(s.Y[i])
			if finite(x) && finite(y) {
				xmin, xmax, ymin, ymax = math.Min(xmin, x), math.Max(xmax, x), math.Min(ymin, y), math.Max(ymax, y)
			}
		}
	}
	if ymin < ymax {
		pad := 0.05 * (ymax - ymin)
		ymin, ymax = ymin-pad, ymax+pad
	}
	if opt.Markers && xmin < xmax {
		pad := 0.03 * (xmax - xmin)
		xmin, xmax = xmin-pad, xmax+pad
	}
	f, err := newFigure(opt, xmin, xmax, ymin, ymax)
	if err != nil {
		return err
	}
	f.axes()
	for k, s := range series {
		c := Palette[k%len(Palette)]
		havePrev := false
		var px, py float64
		for i := range s.X {
			x, y := tx(s.X[i]), ty(s.Y[i])
			if !finite(x) || !finite(y) {
				havePrev = false
				continue
			}
			qx, qy := f.px(x, y)
			if havePrev {
				f.line(px, py, qx, qy, c, 2)
			} else if !opt.Markers && (len(s.X) == 1 || (i+1 < len(s.X) && !finite(ty(s.Y[i+1])))) {
				f.line(qx-2, qy, qx+2, qy, c, 3) // an isolated point
			}
			if opt.Markers {
				f.line(qx-3, qy, qx+3, qy, c, 7)
			}
			px, py, havePrev = qx, qy, true
		}
	}
	// Legend, top right, for named series.
	ly := f.y0 + 6
	for k, s := range series {
		if s.Name == "" {
			continue
		}
		lx := f.x1 - 10 - len(s.Name)*charW - 26
		for x := lx - 4; x < f.x1-6; x++ {
			for y := ly - 2; y < ly+lineH+2; y++ {
				f.img.SetRGBA(x, y, white)
			}
		}
		f.line(float64(lx), float64(ly+lineH/2), float64(lx+18), float64(ly+lineH/2), Palette[k%len(Palette)], 3)
		f.text(lx+24, ly, s.Name, black)
		ly += lineH + 4
	}
	f.frame()
	return png.Encode(w, f.img)
}

// ScatterDensity draws a heat map of density (any non-negative function, e.g. a probability density)
// over the plotting area, the points (x[i], y[i]) on top as small translucent dots, and writes the PNG
// to w. Without explicit ranges the axes cover the points with a 5% margin.
func ScatterDensity(w io.Writer, opt Options, x, y []float64, density func(x, y float64) float64) error {
	if len(x) != len(y) {
		return fmt.Errorf("plot: %d x and %d y values", len(x), len(y))
	}
	if opt.LogY {
		return fmt.Errorf("plot: ScatterDensity has no log axis")
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for i := range x {
		if finite(x[i]) && finite(y[i]) {
			xmin, xmax, ymin, ymax = math.Min(xmin, x[i]), math.Max(xmax, x[i]), math.Min(ymin, y[i]), math.Max(ymax, y[i])
		}
	}
	if xmin < xmax && ymin < ymax {
		px, py := 0.05*(xmax-xmin), 0.05*(ymax-ymin)
		xmin, xmax, ymin, ymax = xmin-px, xmax+px, ymin-py, ymax+py
	}
	f, err := newFigure(opt, xmin, xmax, ymin, ymax)
	if err != nil {
		return err
	}
	if density != nil {
		w, h := f.x1-f.x0, f.y1-f.y0
		vals := make([]float64, w*h)
		peak := 0.0
		for j := 0; j < h; j++ {
			for i := 0; i < w; i++ {
				dx, dy := f.data(f.x0+i, f.y0+j)
				v := density(dx, dy)
				if !(v >= 0) || math.IsInf(v, 0) {
					v = 0
				}
				vals[j*w+i] = v
				peak = math.Max(peak, v)
			}
		}
		for j := 0; j < h; j++ {
			for i := 0; i < w; i++ {
				u := 0.0
				if peak > 0 {
					u = math.Sqrt(vals[j*w+i] / peak) // sqrt: show the tails, not only the peaks
				}
				f.img.SetRGBA(f.x0+i, f.y0+j, heat(u))
			}
		}
	}
	f.noGrid = density != nil // grid lines would cut through the heat map
	f.axes()
	dot := color.RGBA{20, 20, 20, 255}
	alpha := math.Min(0.8, math.Max(0.15, 400/float64(len(x)+1)))
	for i := range x {
		if !finite(x[i]) || !finite(y[i]) {
			continue
		}
		px, py := f.px(x[i], y[i])
		cx, cy := int(math.Round(px)), int(math.Round(py))
		for dx := -1; dx <= 1; dx++ {
			for dy := -1; dy <= 1; dy++ {
				if (dx == 0 || dy == 0) && f.inside(cx+dx, cy+dy) {
					f.blend(cx+dx, cy+dy, dot, alpha)
				}
			}
		}
	}
	f.frame()
	return png.Encode(w, f.img)
}

// heat maps u in [0, 1] to a white -> yellow -> orange -> dark red ramp.
func heat(u float64) color.RGBA {
	stops := []struct {
		u       float64
		r, g, b float64
	}{{0, 255, 255, 255}, {0.25, 255, 237, 160}, {0.5, 254, 178, 76}, {0.75, 240, 59, 32}, {1, 128, 0, 38}}
	u = math.Max(0, math.Min(1, u))
	for k := 1; k < len(stops); k++ {
		if u <= stops[k].u {
			a, b := stops[k-1], stops[k]
			v := (u - a.u) / (b.u - a.u)
			return color.RGBA{uint8(a.r + v*(b.r-a.r)), uint8(a.g + v*(b.g-a.g)), uint8(a.b + v*(b.b-a.b)), 255}
		}
	}
	return color.RGBA{128, 0, 38, 255}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// WriteFile creates path and lets draw fill it (Lines, ScatterDensity), reporting errors with the
// path.
func WriteFile(path string, draw func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := draw(w); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
