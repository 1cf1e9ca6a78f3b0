package tensor

// The data-movement and elementwise kernels, generic for the same reason as kernels.go: the
// gradient tests run their float64 instantiations.

// addForward: y = a + b elementwise.
func addForward[F Float](a, b, y []F) {
	for i, v := range a {
		y[i] = v + b[i]
	}
}

// mulForward: y = a * b elementwise (dropout's forward and backward, with b the mask).
func mulForward[F Float](a, b, y []F) {
	for i, v := range a {
		y[i] = v * b[i]
	}
}

// scaleForward: y = s*x.
func scaleForward[F Float](s F, x, y []F) {
	for i, v := range x {
		y[i] = s * v
	}
}

// addChannelForward: x (NC,HW) + v (NC) broadcast over HW -> y (NC,HW).
func addChannelForward[F Float](hw int, x, v, y []F) {
	for p, bias := range v {
		src, dst := x[p*hw:(p+1)*hw], y[p*hw:(p+1)*hw]
		for i, xv := range src {
			dst[i] = xv + bias
		}
	}
}

// sumHW: x (NC,HW) -> y (NC), the adjoint of the broadcast in addChannelForward.
func sumHW[F Float](hw int, x, y []F) {
	for p := range y {
		var s F
		for _, v := range x[p*hw : (p+1)*hw] {
			s += v
		}
		y[p] = s
	}
}

// concatForward: a (N,sa), b (N,sb) -> y (N,sa+sb), sa and sb being the per-sample sizes
// (channels times pixels), which is a channel concat for NCHW.
func concatForward[F Float](n, sa, sb int, a, b, y []F) {
	for i := 0; i < n; i++ {
		copy(y[i*(sa+sb):i*(sa+sb)+sa], a[i*sa:(i+1)*sa])
		copy(y[i*(sa+sb)+sa:(i+1)*(sa+sb)], b[i*sb:(i+1)*sb])
	}
}

// concatBackward: dy (N,sa+sb) -> da (N,sa), db (N,sb).
func concatBackward[F Float](n, sa, sb int, dy, da, db []F) {
	for i := 0; i < n; i++ {
		copy(da[i*sa:(i+1)*sa], dy[i*(sa+sb):i*(sa+sb)+sa])
		copy(db[i*sb:(i+1)*sb], dy[i*(sa+sb)+sa:(i+1)*(sa+sb)])
	}
}
