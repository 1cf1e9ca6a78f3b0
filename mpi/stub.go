//go:build !cgo || !mpi

package mpi

// Enabled reports whether this binary was built with MPI (-tags mpi and cgo).
const Enabled = false

// Init returns Solo, or ErrNoMPI when a launcher started more than one rank: without MPI this
// binary cannot be one rank of a job.
func Init() (Comm, error) {
	if LaunchedSize() > 1 || Launched() && LaunchedRank() > 0 {
		return nil, ErrNoMPI
	}
	return Solo, nil
}

// Finalize does nothing without MPI.
func Finalize() error { return nil }
