// Package imageio writes sampled images in the formats other tools read, and reads starting noise:
// NumPy's .npy and .npz (an .npz of uint8 images of shape (N,H,W,C) under the key "arr_0" is what FID
// implementations load), and animated GIFs of the reverse process.
//
// Only what those formats need is implemented, so it stays small enough to check by reading: .npy
// versions 1-3 with little- or big-endian float32/float64 and uint8 in C order, and .npz archives of
// such files, stored uncompressed as numpy.savez writes them.
package imageio
