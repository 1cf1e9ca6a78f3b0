// Command ddpm trains, samples, evaluates and serves DDPM/DDIM diffusion models.
//
// Each subcommand lives in its own file and registers itself in an init function, so subcommands can
// be added without touching this one. A subcommand parses its flags and calls the library; no math
// lives here.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/mpi"
)

// command is one subcommand: "ddpm NAME [flags]".
type command struct {
	name    string
	summary string
	// run parses args (everything after the subcommand name) and does the work. Output goes to
	// stdout; diagnostics to stderr.
	run func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("ddpm: duplicate subcommand " + c.name)
	}
	commands[c.name] = c
}

// newFlagSet returns a flag set that reports errors to the caller instead of exiting, so every
// invalid input takes the same path: one line on stderr and exit status 2.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ddpm "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ddpm COMMAND [flags]   (ddpm COMMAND -h for a command's flags)")
	fmt.Fprintln(w, "commands:")
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the process exit status: 0 on success, 2 on any error (invalid input included).
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ddpm: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	leave, err := checkLaunch(args, stderr)
	if err != nil {
		return 2
	}
	err = c.run(args[1:], stdout, stderr)
	if ferr := leave(); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "ddpm %s: %v\n", c.name, err)
		return 2
	}
	return 0
}

// subcommands runs the subcommand args[0] of a command with subcommands (data, eval), printing
// usage for -h, no subcommand or an unknown one.
func subcommands(subs map[string]func(args []string, stdout, stderr io.Writer) error, usage func(io.Writer), args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return fmt.Errorf("missing subcommand")
		}
		return flag.ErrHelp
	}
	f, ok := subs[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	return f(args[1:], stdout, stderr)
}

// mpiCommands are the commands that run as one job of several ranks under mpirun (they join it
// with joinMPI and leave it with leaveMPI; docs/distributed.md). Every other command is one
// process and refuses a launch of several ranks.
var mpiCommands = []string{"train", "sample", "eval fid", "eval guidance"}

// mpiAware reports whether the command line args (command first) names one of mpiCommands.
func mpiAware(args []string) bool {
	for _, c := range mpiCommands {
		words := strings.Fields(c)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return true
		}
	}
	return false
}

// checkLaunch refuses, in one line on stderr, a command that cannot be what an MPI launcher
// started it as, before it parses a flag: with several ranks, any command of a binary built
// without MPI (mpi.ErrNoMPI) and, in an MPI build, any command but mpiCommands, rather than N
// copies writing the same files. A one-rank launch of a command that is not MPI-aware joins MPI
// here (the MPI build must finalise what a launcher started) and leave finalises it; the
// MPI-aware commands join after their flags, in the command. leave is never nil.
//
// Every rank of the launch takes the same way, so one of them speaks: in the MPI build rank 0
// alone; in the stub, which knows its rank only from the environment, rank 0 at once and the
// others after a second, by which a launcher has usually ended them for rank 0's exit (a PMIx
// launch that announces no size leaves rank 0 running, and the others must say why they stop).
func checkLaunch(args []string, stderr io.Writer) (leave func() error, err error) {
	leave = func() error { return nil }
	if !mpi.Launched() {
		return leave, nil
	}
	aware := mpiAware(args)
	if aware && mpi.Enabled {
		return leave, nil
	}
	comm, err := mpi.Init()
	if err != nil {
		if mpi.LaunchedRank() > 0 {
			time.Sleep(time.Second)
		}
		fmt.Fprintf(stderr, "ddpm %s: %v\n", args[0], err)
		return leave, err
	}
	if comm.Size() > 1 {
		// In the stub Init refused above; this is the MPI build and a command that is one process.
		name := args[0]
		if len(args) > 1 && (name == "eval" || name == "data") && !strings.HasPrefix(args[1], "-") {
			name += " " + args[1] // the commands with subcommands
		}
		err := fmt.Errorf("mpirun started %d ranks, but `ddpm %s` runs as one process; only %s run as an MPI job: run it without mpirun",
			comm.Size(), name, strings.Join(mpiCommands, ", "))
		if comm.Rank() == 0 {
			fmt.Fprintf(stderr, "ddpm %s: %v\n", args[0], err)
		}
		// The first rank to exit non-zero makes mpirun end the others, so no rank leaves before
		// rank 0 has said why, and the others give its line a moment to reach mpirun.
		_ = comm.Barrier()
		if comm.Rank() > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		mpi.Finalize()
		return leave, err
	}
	return mpi.Finalize, nil
}
