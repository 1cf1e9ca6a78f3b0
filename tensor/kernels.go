package tensor

import "math"

// The kernels below are written once over Float so that the float32 instantiation runs the network
// and the float64 instantiation is what the gradient tests check against finite differences: the
// same code, only wider arithmetic. Each forward/backward pair states its shapes on its first line.

// Float is the element type a kernel is instantiated with.
type Float interface{ ~float32 | ~float64 }

// convShape is the geometry of one Conv2D call.
type convShape struct {
	N, Cin, H, W, Cout, K, Stride, Pad, Ho, Wo int
}

func (s convShape) colRows() int { return s.Cin * s.K * s.K }
func (s convShape) outHW() int   { return s.Ho * s.Wo }

// direct reports whether the conv is a plain matrix product over pixels (1x1, stride 1, no
// padding), so the input itself is the im2col matrix.
func (s convShape) direct() bool { return s.K == 1 && s.Stride == 1 && s.Pad == 0 }

// im2col writes the (Cin*K*K, Ho*Wo) patch matrix of one sample xn (Cin,H,W) into col; taps that
// fall into the padding are zero. Input channels are split across goroutines.
func im2col[F Float](s convShape, xn, col []F, threads int) {
	parallelFor(s.Cin, min(threads, s.Cin*s.K*s.K*s.outHW()/16384+1), func(lo, hi int) { im2colRange(s, xn, col, lo, hi) })
}

func im2colRange[F Float](s convShape, xn, col []F, c0, c1 int) {
	p := s.outHW()
	for ci := c0; ci < c1; ci++ {
		plane := xn[ci*s.H*s.W : (ci+1)*s.H*s.W]
		for ky := 0; ky < s.K; ky++ {
			for kx := 0; kx < s.K; kx++ {
				row := col[((ci*s.K+ky)*s.K+kx)*p : ((ci*s.K+ky)*s.K+kx+1)*p]
				// Output columns lo..hi read inside the image; the rest read padding.
				lo, hi := validRange(s.Wo, s.Stride, kx-s.Pad, s.W)
				for oy := 0; oy < s.Ho; oy++ {
					iy := oy*s.Stride - s.Pad + ky
					dst := row[oy*s.Wo : (oy+1)*s.Wo]
					if iy < 0 || iy >= s.H {
						clear(dst)
						continue
					}
					src := plane[iy*s.W : (iy+1)*s.W]
					clear(dst[:lo])
					clear(dst[hi:])
					if s.Stride == 1 {
						copy(dst[lo:hi], src[lo+kx-s.Pad:])
						continue
					}
					for ox := lo; ox < hi; ox++ {
						dst[ox] = src[ox*s.Stride-s.Pad+kx]
					}
				}
			}
		}
	}
}

// validRange returns the outputs lo..hi-1 of n whose input index o*stride+off lies in [0,size).
func validRange(n, stride, off, size int) (lo, hi int) {
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	if size-1-off < 0 {
		return lo, lo
	}
	hi = min(n, (size-1-off)/stride+1)
	lo = min(lo, hi)
	return lo, hi
}

// col2im is the adjoint of im2col: it adds each patch-matrix entry back onto the input pixel it
// was read from (dxn += col2im(dcol)). Each goroutine owns whole input channels, so none race.
func col2im[F Float](s convShape, dcol, dxn []F, threads int) {
	parallelFor(s.Cin, min(threads, s.Cin*s.K*s.K*s.outHW()/16384+1), func(lo, hi int) { col2imRange(s, dcol, dxn, lo, hi) })
}

func col2imRange[F Float](s convShape, dcol, dxn []F, c0, c1 int) {
	p := s.outHW()
	for ci := c0; ci < c1; ci++ {
		plane := dxn[ci*s.H*s.W : (ci+1)*s.H*s.W]
		for ky := 0; ky < s.K; ky++ {
			for kx := 0; kx < s.K; kx++ {
				row := dcol[((ci*s.K+ky)*s.K+kx)*p : ((ci*s.K+ky)*s.K+kx+1)*p]
				lo, hi := validRange(s.Wo, s.Stride, kx-s.Pad, s.W)
				for oy := 0; oy < s.Ho; oy++ {
					iy := oy*s.Stride - s.Pad + ky
					if iy < 0 || iy >= s.H {
						continue
					}
					src := row[oy*s.Wo+lo : oy*s.Wo+hi]
					dst := plane[iy*s.W : (iy+1)*s.W]
					if s.Stride == 1 {
						dst = dst[lo+kx-s.Pad:]
						dst = dst[:len(src)]
						for i, v := range src {
							dst[i] += v
						}
						continue
					}
					for i, v := range src {
						dst[(lo+i)*s.Stride-s.Pad+kx] += v
					}
				}
			}
		}
	}
}

// conv2dForward: x (N,Cin,H,W), w (Cout,Cin,K,K), b (Cout) or nil -> y (N,Cout,Ho,Wo).
// Per sample, y = w (Cout, Cin*K*K) · im2col(x) (Cin*K*K, Ho*Wo) + b.
func conv2dForward[F Float](s convShape, x, w, b, y []F, threads int) {
	ckk, p := s.colRows(), s.outHW()
	var col []F
	if !s.direct() {
		buf := getBuf[F](ckk * p)
		defer putBuf(buf)
		col = *buf
	}
	for n := 0; n < s.N; n++ {
		xn := x[n*s.Cin*s.H*s.W : (n+1)*s.Cin*s.H*s.W]
		yn := y[n*s.Cout*p : (n+1)*s.Cout*p]
		cn := xn
		if !s.direct() {
			im2col(s, xn, col, threads)
			cn = col
		}
		gemm(false, false, s.Cout, p, ckk, w, ckk, cn, p, 0, yn, p, threads)
		if b != nil {
			for co := 0; co < s.Cout; co++ {
				row := yn[co*p : (co+1)*p]
				for i := range row {
					row[i] += b[co]
				}
			}
		}
	}
}

// conv2dBackward: dy (N,Cout,Ho,Wo), x (N,Cin,H,W), w (Cout,Cin,K,K) -> dx (N,Cin,H,W), written;
// dw (Cout,Cin,K,K) and db (Cout, or nil) are accumulated. Per sample,
// dw += dy · im2col(x)^T, db += the sum of dy over pixels, dx = col2im(w^T · dy).
func conv2dBackward[F Float](s convShape, dy, x, w, dx, dw, db []F, threads int) {
	ckk, p := s.colRows(), s.outHW()
	var col, dcol []F
	if !s.direct() {
		buf, dbuf := getBuf[F](ckk*p), getBuf[F](ckk*p)
		defer putBuf(buf)
		defer putBuf(dbuf)
		col, dcol = *buf, *dbuf
	}
	inN := s.Cin * s.H * s.W
	for n := 0; n < s.N; n++ {
		xn := x[n*inN : (n+1)*inN]
		dxn := dx[n*inN : (n+1)*inN]
		dyn := dy[n*s.Cout*p : (n+1)*s.Cout*p]
		if s.direct() {
			gemm(false, true, s.Cout, ckk, p, dyn, p, xn, p, 1, dw, ckk, threads)
			gemm(true, false, ckk, p, s.Cout, w, ckk, dyn, p, 0, dxn, p, threads)
		} else {
			im2col(s, xn, col, threads)
			gemm(false, true, s.Cout, ckk, p, dyn, p, col, p, 1, dw, ckk, threads)
			gemm(true, false, ckk, p, s.Cout, w, ckk, dyn, p, 0, dcol, p, threads)
			clear(dxn)
			col2im(s, dcol, dxn, threads)
		}
		if db != nil {
			for co := 0; co < s.Cout; co++ {
				var sum F
				for _, v := range dyn[co*p : (co+1)*p] {
					sum += v
				}
				db[co] += sum
			}
		}
	}
}

// linearForward: x (N,In), w (Out,In), b (Out) or nil -> y (N,Out) = x w^T + b.
func linearForward[F Float](n, in, out int, x, w, b, y []F, threads int) {
	gemm(false, true, n, out, in, x, in, w, in, 0, y, out, threads)
	if b != nil {
		for i := 0; i < n; i++ {
			row := y[i*out : (i+1)*out]
			for j := range row {
				row[j] += b[j]
			}
		}
	}
}

// linearBackward: dy (N,Out), x (N,In), w (Out,In) -> dx (N,In) = dy w, written;
// dw += dy^T x and db += the column sums of dy, accumulated.
func linearBackward[F Float](n, in, out int, dy, x, w, dx, dw, db []F, threads int) {
	gemm(false, false, n, in, out, dy, out, w, in, 0, dx, in, threads)
	gemm(true, false, out, in, n, dy, out, x, in, 1, dw, in, threads)
	if db != nil {
		for i := 0; i < n; i++ {
			for j, v := range dy[i*out : (i+1)*out] {
				db[j] += v
			}
		}
	}
}

// groupNormForward: x (N,C,HW) -> y (N,C,HW) and stats (N,G,2) = (mean, 1/sqrt(var+eps)) per
// sample and group, var being the biased variance as in PyTorch. Sums run in float64 so the
// float32 instantiation does not lose the mean of a large group.
func groupNormForward[F Float](n, c, hw, groups int, eps float64, x, gamma, beta, y, stats []F, threads int) {
	cpg := c / groups
	m := cpg * hw
	parallelFor(n*groups, workers(threads, n*c*hw), func(lo, hi int) {
		for ig := lo; ig < hi; ig++ {
			i, g := ig/groups, ig%groups
			off := (i*c + g*cpg) * hw
			xs := x[off : off+m]
			var sum float64
			for _, v := range xs {
				sum += float64(v)
			}
			mean := sum / float64(m)
			var sq float64
			for _, v := range xs {
				d := float64(v) - mean
				sq += d * d
			}
			rstd := 1 / math.Sqrt(sq/float64(m)+eps)
			stats[(i*groups+g)*2] = F(mean)
			stats[(i*groups+g)*2+1] = F(rstd)
			for cc := 0; cc < cpg; cc++ {
				ch := g*cpg + cc
				a := float64(gamma[ch]) * rstd
				bb := float64(beta[ch]) - mean*a
				src := xs[cc*hw : (cc+1)*hw]
				dst := y[off+cc*hw : off+(cc+1)*hw]
				for j, v := range src {
					dst[j] = F(float64(v)*a + bb)
				}
			}
		}
	})
}

// workers is how many goroutines an elementwise kernel over size elements should use: one per
// 32k elements at most, so small tensors do not pay for goroutines.
func workers(threads, size int) int { return max(1, min(threads, size>>15)) }

// groupNormBackward: dy, x (N,C,HW), stats from the forward -> dx (N,C,HW), written; dgamma and
// dbeta (C) accumulated. With xh = (x-mean)*rstd and g = dy*gamma over one group of m elements,
// dx = rstd * (g - mean(g) - xh*mean(g*xh)). Groups run in parallel; the per-sample sums for
// dgamma and dbeta are added up afterwards in sample order, so threads do not change the result.
func groupNormBackward[F Float](n, c, hw, groups int, dy, x, stats, gamma, dx, dgamma, dbeta []F, threads int) {
	cpg := c / groups
	m := cpg * hw
	sumDy, sumDyX := make([]float64, n*c), make([]float64, n*c)
	parallelFor(n*groups, workers(threads, n*c*hw), func(lo, hi int) {
		for ig := lo; ig < hi; ig++ {
			i, g := ig/groups, ig%groups
			mean := float64(stats[(i*groups+g)*2])
			rstd := float64(stats[(i*groups+g)*2+1])
			off := (i*c + g*cpg) * hw
			var sumG, sumGX float64
			for cc := 0; cc < cpg; cc++ {
				ch := g*cpg + cc
				var sdy, sdyx float64
				for j := off + cc*hw; j < off+(cc+1)*hw; j++ {
					xh := (float64(x[j]) - mean) * rstd
					d := float64(dy[j])
					sdy += d
					sdyx += d * xh
				}
				sumDy[i*c+ch], sumDyX[i*c+ch] = sdy, sdyx
				gm := float64(gamma[ch])
				sumG += gm * sdy
				sumGX += gm * sdyx
			}
			meanG, meanGX := sumG/float64(m), sumGX/float64(m)
			for cc := 0; cc < cpg; cc++ {
				gm := float64(gamma[g*cpg+cc])
				for j := off + cc*hw; j < off+(cc+1)*hw; j++ {
					xh := (float64(x[j]) - mean) * rstd
					dx[j] = F(rstd * (float64(dy[j])*gm - meanG - xh*meanGX))
				}
			}
		}
	})
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			dbeta[ch] += F(sumDy[i*c+ch])
			dgamma[ch] += F(sumDyX[i*c+ch])
		}
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// siluForward: y = x * sigmoid(x), elementwise.
func siluForward[F Float](x, y []F, threads int) {
	parallelFor(len(x), workers(threads, len(x)), func(lo, hi int) {
		for i, v := range x[lo:hi] {
			y[lo+i] = F(float64(v) * sigmoid(float64(v)))
		}
	})
}

// siluBackward: dx = dy * s * (1 + x*(1-s)) with s = sigmoid(x).
func siluBackward[F Float](dy, x, dx []F, threads int) {
	parallelFor(len(x), workers(threads, len(x)), func(lo, hi int) {
		for i, v := range x[lo:hi] {
			s := sigmoid(float64(v))
			dx[lo+i] = F(float64(dy[lo+i]) * s * (1 + float64(v)*(1-s)))
		}
	})
}

// upsample2xForward: x (NC,H,W) -> y (NC,2H,2W), each pixel copied to a 2x2 block.
func upsample2xForward[F Float](nc, h, w int, x, y []F) {
	for p := 0; p < nc; p++ {
		src := x[p*h*w : (p+1)*h*w]
		dst := y[p*4*h*w : (p+1)*4*h*w]
		for i := 0; i < h; i++ {
			r0 := dst[(2*i)*2*w : (2*i+1)*2*w]
			r1 := dst[(2*i+1)*2*w : (2*i+2)*2*w]
			for j, v := range src[i*w : (i+1)*w] {
				r0[2*j], r0[2*j+1] = v, v
				r1[2*j], r1[2*j+1] = v, v
			}
		}
	}
}

// upsample2xBackward: dy (NC,2H,2W) -> dx (NC,H,W), the sum of each 2x2 block.
func upsample2xBackward[F Float](nc, h, w int, dy, dx []F) {
	for p := 0; p < nc; p++ {
		src := dy[p*4*h*w : (p+1)*4*h*w]
		dst := dx[p*h*w : (p+1)*h*w]
		for i := 0; i < h; i++ {
			r0 := src[(2*i)*2*w : (2*i+1)*2*w]
			r1 := src[(2*i+1)*2*w : (2*i+2)*2*w]
			for j := 0; j < w; j++ {
				dst[i*w+j] = r0[2*j] + r0[2*j+1] + r1[2*j] + r1[2*j+1]
			}
		}
	}
}

// mseForward: loss = mean((pred-target)^2), dpred = 2*(pred-target)/len, summed in float64.
func mseForward[F Float](pred, target, dpred []F) float64 {
	var sum float64
	scale := 2 / float64(len(pred))
	for i, p := range pred {
		d := float64(p) - float64(target[i])
		sum += d * d
		dpred[i] = F(scale * d)
	}
	return sum / float64(len(pred))
}
