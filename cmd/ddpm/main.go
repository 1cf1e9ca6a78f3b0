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
	if err := c.run(args[1:], stdout, stderr); err != nil {
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
