// Package fid is the pipeline of `ddpm eval fid` and `ddpm eval table`: it samples a model (or reads
// its saved images), extracts the features of the project's MNIST or Fashion-MNIST classifier and
// scores them with package eval (FID, Heusel et al. 2017; KID, Binkowski et al. 2018) against the
// test set, beside the floor that n training images reach; and it tabulates such results in the
// layout of the DDIM paper's Table 1.
package fid

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine"
	"github.com/ddpm-go/ddpm/eval"
	"github.com/ddpm-go/ddpm/generate"
	"github.com/ddpm-go/ddpm/imageio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/mpi"
	"github.com/ddpm-go/ddpm/schedule"
	"github.com/ddpm-go/ddpm/tensor"
)

// Options are what Run scores and how.
type Options struct {
	Data, DataDir string // reference set and classifier: mnist or fashion
	Classifier    string // classifier weights ("": the shipped one for Data)
	NPZ           string // score these images (uint8 (N,H,W,C) arr_0) instead of sampling
	LimitN        bool   // with NPZ: score the first N images instead of all
	Ckpt          string // run directory or weights file to sample ("": the shipped model)
	EMA           bool   // sample the EMA weights of a run or checkpoint
	Drift         string // also write the samples' energy per step (eval.Drift) as JSON lines here
	Spec          generate.SamplerSpec
	N, Batch      int
	Chunk         int // images per network call (< 0: generate.DefaultChunk)
	Seed          uint64
	Engine        string
	Precision     string // of sampling; the classifier always runs fp32
	Threads       int
	RefN          int // test images the statistics are fitted to (0: all)
	KIDSubsets    int
	KIDSize       int
	Threshold     float64 // top softmax probability of a confident prediction
	// ClassBalanced samples a class-conditional model with image i of class i mod K (n/K per
	// class), guided at scale Guidance (generate.ClassSpec's s; nil: generate.DefaultGuidance).
	ClassBalanced bool
	// ClassPrior, with ClassBalanced, gives the classes the test split's frequencies instead of
	// equal shares (ClassLabels): on unbalanced data (emoji: two thirds People & Body) equal shares
	// would make FID against the test set measure the class mix rather than the images.
	ClassPrior bool
	Guidance   *float64
	// Comm, if it has more than one rank, makes Run collective: every rank calls it with the same
	// options, draws its part of the N images (mpi.ShardChunks: image i depends only on Seed, i
	// and its class, never on the rank that draws it) and rank 0 gathers them as the 8-bit images
	// it scores, so the result is the one process's. Only rank 0 loads the training set and the
	// classifier, logs and returns a result; the others return nil, nil. nil: one process.
	Comm mpi.Comm
}

// Result is one scoring, the JSON line `ddpm eval fid` prints and `ddpm eval table` reads.
type Result struct {
	FID        float64 `json:"fid"`
	KID        float64 `json:"kid"`
	KIDStd     float64 `json:"kid_std"`
	N          int     `json:"n"`
	Floor      float64 `json:"floor"`     // FID of n training images against the test set
	KIDFloor   float64 `json:"kid_floor"` // KID of the same
	Classes    []int   `json:"classes"`   // predicted-class histogram of the samples
	Confident  float64 `json:"confident"` // fraction with top softmax probability >= Threshold
	Threshold  float64 `json:"threshold"`
	ClassKL    float64 `json:"class_kl"` // KL(histogram || uniform), nats
	Data       string  `json:"data"`
	Source     string  `json:"source"`            // model (or npz) scored
	Sampler    string  `json:"sampler,omitempty"` // e.g. "ddim-50 eta=0 linspace"
	Setting    string  `json:"setting,omitempty"` // the sampler without its step count: a row of the table
	Steps      int     `json:"steps,omitempty"`   // sampling steps S: a column of the table
	Seed       uint64  `json:"seed"`
	Classifier string  `json:"classifier"`
	RefN       int     `json:"ref_n"` // test images the statistics are fitted to
	SampleSecs float64 `json:"sample_secs,omitempty"`
	// Coverage (Naeem et al. 2020, k = 5) of n test images by the samples, in classifier features.
	Coverage float64 `json:"coverage"`
	// Of a class-balanced run: the guidance scale s, and the fraction of samples the classifier
	// puts in the class they were drawn for, overall and per class.
	Guidance      *float64  `json:"guidance,omitempty"`
	Accuracy      float64   `json:"accuracy,omitempty"`
	ClassAccuracy []float64 `json:"class_accuracy,omitempty"`
}

// CoverageK is the neighbourhood size of Result.Coverage, Naeem et al.'s recommended k.
const CoverageK = 5

// Run produces the images (or reads them), extracts the classifier's features of them, of the test
// set and of n training images, and scores them. Progress goes to log. With o.Comm of several
// ranks it is collective and returns the result on rank 0 only (nil, nil on the others).
func Run(ctx context.Context, o Options, log io.Writer) (*Result, error) {
	comm := o.Comm
	if comm == nil {
		comm = mpi.Solo
	}
	if comm.Size() > 1 {
		if o.Drift != "" {
			return nil, fmt.Errorf("--drift follows every image's reverse process in one process; run it without mpirun")
		}
		if comm.Rank() != 0 {
			if o.NPZ != "" {
				return nil, nil // rank 0 scores the saved images alone
			}
			return nil, sampleRank(ctx, o, comm)
		}
	}
	res := &Result{Data: o.Data, Seed: o.Seed, Threshold: o.Threshold}
	testSet, err := loadTest(o)
	if err != nil {
		return nil, err
	}
	trainSet, err := data.Load(o.Data, o.DataDir, data.Train)
	if err != nil {
		return nil, err
	}
	dim := testSet.Size()
	// The classifier is read before any sampling, so a bad one costs nothing.
	cbe, err := engine.New(o.Engine, "fp32", o.Threads)
	if err != nil {
		return nil, err
	}
	defer engine.Close(cbe)
	net, src, err := LoadClassifier(o.Classifier, o.Data, cbe)
	if err != nil {
		return nil, err
	}
	res.Classifier = src

	// 1. The images to score, as [-1, 1] floats quantised to 8 bits like any saved image.
	var images []float32
	var labels []int
	if o.NPZ != "" {
		if images, err = readNPZ(o, testSet); err != nil {
			return nil, err
		}
		res.Source = o.NPZ
	} else if images, labels, err = sample(ctx, o, comm, testSet, trainSet, res, log); err != nil {
		return nil, err
	}
	res.N = len(images) / dim

	// 2. Features of the samples, the test set and n training images (the floor), on fp32.
	fmt.Fprintf(log, "features of %d samples, %d test and %d training images with %s\n", res.N, testSet.N, res.N, src)
	genF, genL, err := net.Apply(ctx, images, res.N, 500)
	if err != nil {
		return nil, err
	}
	testF, _, err := net.Apply(ctx, testSet.Images, testSet.N, 500)
	if err != nil {
		return nil, err
	}
	floorImgs := pickImages(trainSet, res.N, o.Seed)
	floorF, _, err := net.Apply(ctx, floorImgs, len(floorImgs)/dim, 500)
	if err != nil {
		return nil, err
	}
	res.RefN = testSet.N
	if err := score(res, o, net.Cfg, genF, genL, floorF, testF); err != nil {
		return nil, err
	}
	if labels != nil {
		res.Accuracy, res.ClassAccuracy = accuracy(genL, labels, net.Cfg.Classes)
	}
	return res, nil
}

// accuracy is the fraction of rows whose top logit is their label, overall and per label.
func accuracy(logits []float64, labels []int, k int) (float64, []float64) {
	hit, count := make([]float64, k), make([]float64, k)
	total := 0.0
	for i, c := range labels {
		row := logits[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		count[c]++
		if best == c {
			hit[c]++
			total++
		}
	}
	for c := range hit {
		if count[c] > 0 {
			hit[c] /= count[c]
		}
	}
	return total / float64(len(labels)), hit
}

// score fills in the distances of the samples' and the floor's features to the test set's, and
// the class statistics of the samples' logits.
func score(res *Result, o Options, cfg classifier.Config, genF, genL, floorF, testF []float64) error {
	k, refN := cfg.Features, res.RefN
	var err error
	if res.FID, err = eval.FID(genF, res.N, testF, refN, k); err != nil {
		return err
	}
	floorN := len(floorF) / k
	if res.Floor, err = eval.FID(floorF, floorN, testF, refN, k); err != nil {
		return err
	}
	ko := eval.KIDOptions{Subsets: o.KIDSubsets, SubsetSize: o.KIDSize, Seed: o.Seed, Threads: 2}
	if res.KID, res.KIDStd, err = eval.KID(genF, res.N, testF, refN, k, ko); err != nil {
		return err
	}
	if res.KIDFloor, _, err = eval.KID(floorF, floorN, testF, refN, k, ko); err != nil {
		return err
	}
	// Coverage of as many test images as there are samples (the sizes Naeem et al. compare), picked
	// by the seed.
	nr := min(res.N, refN)
	perm := rand.New(rand.NewPCG(o.Seed, 0x636f766572)).Perm(refN)[:nr]
	realF := make([]float64, 0, nr*k)
	for _, i := range perm {
		realF = append(realF, testF[i*k:(i+1)*k]...)
	}
	if nr > CoverageK {
		if res.Coverage, err = eval.Coverage(realF, nr, genF, res.N, k, CoverageK); err != nil {
			return err
		}
	}
	cs, err := eval.Classes(genL, res.N, cfg.Classes, o.Threshold)
	if err != nil {
		return err
	}
	res.Classes, res.Confident, res.ClassKL = cs.Histogram, cs.Confident, cs.KLUniform
	return nil
}

// loadTest loads the test split, cut to o.RefN images.
func loadTest(o Options) (*data.Set, error) {
	testSet, err := data.Load(o.Data, o.DataDir, data.Test)
	if err != nil {
		return nil, err
	}
	if dim := testSet.Size(); o.RefN > 0 && o.RefN < testSet.N {
		testSet.N, testSet.Images = o.RefN, testSet.Images[:o.RefN*dim]
	}
	return testSet, nil
}

// samplerSetup is the model, sampler and job that sample and sampleRank draw from: the job of all o.N
// images (its Labels for a class-balanced run) and its engine, closed by close.
type samplerSetup struct {
	m       *generate.Model
	be      tensor.Backend
	sampler diffusion.Sampler
	spec    generate.SamplerSpec
	// warn is Model.Sampler's warning that a distilled model is sampled off its grid; rank 0
	// logs it, since a score of such a run says little about the model.
	warn  string
	job   generate.Job
	close func()
}

// setup loads the model on o's engine, checks it against the data's shape and builds the job.
func setup(o Options, testSet *data.Set) (*samplerSetup, error) {
	be, err := engine.New(o.Engine, o.Precision, o.Threads)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			engine.Close(be)
		}
	}()
	m, err := generate.Load(o.Ckpt, be, o.EMA)
	if err != nil {
		return nil, err
	}
	if c, h, w := m.Shape(); c != testSet.C || h != testSet.H || w != testSet.W {
		return nil, fmt.Errorf("model %s makes %dx%dx%d images, %s has %dx%dx%d", m.Source, c, h, w, o.Data, testSet.C, testSet.H, testSet.W)
	}
	// Model.Sampler rather than Spec.New: a distilled student scored without --steps is scored on
	// its own grid, the only sampler it was trained for.
	sampler, spec, warn, err := m.Sampler(o.Spec)
	if err != nil {
		return nil, err
	}
	job := generate.Job{N: o.N, Seed: o.Seed, Batch: o.Batch, Chunk: o.Chunk}
	if o.ClassBalanced {
		k := len(m.Classes)
		if k == 0 {
			return nil, fmt.Errorf("--class-balanced: model %s is unconditional", m.Source)
		}
		var prior []uint8
		if o.ClassPrior {
			prior = testSet.Labels
		}
		if job.Labels, err = ClassLabels(o.N, k, prior); err != nil {
			return nil, err
		}
		job.Guidance = generate.ClassSpec{Guidance: o.Guidance}.Scale()
	}
	if job.Chunk < 0 {
		job.Chunk = generate.DefaultChunk(be)
	}
	ok = true
	return &samplerSetup{m: m, be: be, sampler: sampler, spec: spec, warn: warn, job: job, close: func() { engine.Close(be) }}, nil
}

// part is rank's images of j on comm (mpi.ShardChunks: whole --chunk chunks), with their labels.
func part(j generate.Job, comm mpi.Comm) generate.Job {
	lo, hi := mpi.ShardChunks(j.Start, j.N, j.Chunk, comm.Rank(), comm.Size())
	p := j
	p.Start, p.N = j.Start+lo, hi-lo
	if j.Labels != nil {
		p.Labels = j.Labels[lo:hi]
	}
	return p
}

// samplePart draws rank's part of j and returns its images as the 8-bit values a saved image
// holds (imageio.ToUint8, what quantise keeps), with step, if not nil, seeing its batches.
func samplePart(ctx context.Context, s *samplerSetup, j generate.Job, step func(generate.Batch, diffusion.Step) error) ([]uint8, error) {
	var mine []uint8
	if j.N == 0 {
		return mine, nil
	}
	j.Step = step
	j.Emit = func(_ generate.Batch, x []float64) error {
		mine = imageio.ToUint8(mine, x)
		return nil
	}
	_, err := s.m.Sample(ctx, s.sampler, j)
	return mine, err
}

// sampleRank is Run on a rank other than 0 of several: it draws the rank's part of the images
// and sends them to rank 0 (see sample).
func sampleRank(ctx context.Context, o Options, comm mpi.Comm) error {
	testSet, err := loadTest(o)
	if err != nil {
		return err
	}
	s, err := setup(o, testSet)
	if err != nil {
		return err
	}
	defer s.close()
	p := part(s.job, comm)
	if err := s.m.CheckMemory(p); err != nil {
		return err
	}
	mine, err := samplePart(ctx, s, p, nil)
	if err != nil {
		return err
	}
	_, err = comm.Gather(mine, 0)
	return err
}

// sample draws o.N images from the model and records what drew them in res; labels are the class
// each image was drawn for (nil unless class-balanced). On several ranks it is rank 0's part of
// the collective: it draws its own part and gathers the others' (sampleRank).
func sample(ctx context.Context, o Options, comm mpi.Comm, testSet, trainSet *data.Set, res *Result, log io.Writer) ([]float32, []int, error) {
	s, err := setup(o, testSet)
	if err != nil {
		return nil, nil, err
	}
	defer s.close()
	if s.warn != "" {
		fmt.Fprintln(log, s.warn)
	}
	m, be, sampler, spec, job := s.m, s.be, s.sampler, s.spec, s.job
	if job.Labels != nil {
		res.Guidance = &job.Guidance
	}
	if comm.Size() > 1 {
		return sampleGathered(ctx, comm, s, res, log)
	}
	if err := m.CheckMemory(job); err != nil {
		return nil, nil, err
	}
	dim := testSet.Size()
	bar := generate.NewProgress(log, job.NumBatches(), spec.Steps)
	var drift eval.Drift
	job.Step = func(b generate.Batch, s diffusion.Step) error {
		bar.Step(b, s)
		if o.Drift != "" {
			drift.Add(s.Index, s.T, s.X, b.N, dim)
		}
		return nil
	}
	what := ""
	if job.Labels != nil {
		what = fmt.Sprintf(", class i mod %d, guidance s = %g", len(m.Classes), job.Guidance)
	}
	fmt.Fprintf(log, "sampling %d images%s from %s with %s on %s\n", o.N, what, m.Source, spec, engine.Describe(be))
	t0 := time.Now()
	x, err := m.Sample(ctx, sampler, job)
	bar.Finish()
	if err != nil {
		return nil, nil, err
	}
	res.SampleSecs = time.Since(t0).Seconds()
	if o.Drift != "" {
		drift.AddFinal(x, o.N, dim)
		if err := writeDrift(o.Drift, &drift, m.Schedule.AlphaBar, eval.SecondMoment(trainSet.Images), log); err != nil {
			return nil, nil, err
		}
	}
	res.Source, res.Sampler, res.Steps, res.Setting = m.Source, spec.String(), spec.Steps, setting(spec)
	return quantise(x), job.Labels, nil
}

// sampleGathered is sample on rank 0 of several: it draws its part of the images, gathers the
// other ranks' in rank order, which is index order, and checks each part's size. The images are
// the bytes quantise would make of the whole job in one process, so the scores are the same.
func sampleGathered(ctx context.Context, comm mpi.Comm, s *samplerSetup, res *Result, log io.Writer) ([]float32, []int, error) {
	m, job, dim := s.m, s.job, s.m.Dim()
	p := part(job, comm)
	if err := m.CheckMemory(p); err != nil {
		return nil, nil, err
	}
	bar := generate.NewProgress(log, p.NumBatches(), s.spec.Steps)
	what := ""
	if job.Labels != nil {
		what = fmt.Sprintf(", class i mod %d, guidance s = %g", len(m.Classes), job.Guidance)
	}
	fmt.Fprintf(log, "sampling %d images%s from %s with %s on %s, on %d ranks (rank 0: images %d..%d)\n",
		job.N, what, m.Source, s.spec, engine.Describe(s.be), comm.Size(), p.Start, p.Start+p.N-1)
	t0 := time.Now()
	mine, err := samplePart(ctx, s, p, func(b generate.Batch, st diffusion.Step) error { bar.Step(b, st); return nil })
	bar.Finish()
	if err != nil {
		return nil, nil, err
	}
	all, err := comm.Gather(mine, 0)
	if err != nil {
		return nil, nil, err
	}
	u := make([]uint8, 0, job.N*dim)
	for r, b := range all {
		lo, hi := mpi.ShardChunks(job.Start, job.N, job.Chunk, r, comm.Size())
		if len(b) != (hi-lo)*dim {
			return nil, nil, fmt.Errorf("rank %d sent %d bytes for %d images", r, len(b), hi-lo)
		}
		u = append(u, b...)
	}
	res.SampleSecs = time.Since(t0).Seconds()
	res.Source, res.Sampler, res.Steps, res.Setting = m.Source, s.spec.String(), s.spec.Steps, setting(s.spec)
	return fromUint8(u), job.Labels, nil
}

// setting is the sampler's description without the step count, which the table has as a column.
func setting(sp generate.SamplerSpec) string {
	sp.Steps = 0
	return sp.Name + strings.TrimPrefix(sp.String(), sp.Name+"-0")
}

// quantise maps samples to the 8-bit values a saved image would hold and back to [-1, 1], so a
// model's score equals the score of its `ddpm sample --npz` output.
func quantise(x []float64) []float32 {
	return fromUint8(imageio.ToUint8(nil, x))
}

// fromUint8 maps 8-bit image values to [-1, 1].
func fromUint8(u []uint8) []float32 {
	out := make([]float32, len(u))
	for i, v := range u {
		out[i] = float32(v)/127.5 - 1
	}
	return out
}

// pickImages returns n training images (all of them if n >= N) chosen by seed, without replacement.
func pickImages(s *data.Set, n int, seed uint64) []float32 {
	n = min(n, s.N)
	perm := rand.New(rand.NewPCG(seed, 0x666c6f6f72)).Perm(s.N)[:n]
	out := make([]float32, 0, n*s.Size())
	for _, i := range perm {
		out = append(out, s.Image(i)...)
	}
	return out
}

// Validate checks the options before anything is loaded; its errors name them as the flags of
// `ddpm eval fid` do. The sampler settings are checked against a stand-in T (the model's own is
// checked once it is loaded).
func (o Options) Validate() error {
	switch {
	case o.N < 2:
		return fmt.Errorf("--n %d must be at least 2", o.N)
	case o.Batch < 1:
		return fmt.Errorf("--batch %d must be at least 1", o.Batch)
	case o.Chunk < -1:
		return fmt.Errorf("--chunk %d must be >= 0 (or -1)", o.Chunk)
	case o.Threads < 0:
		return fmt.Errorf("--threads %d must be >= 0", o.Threads)
	case o.RefN < 0 || o.RefN == 1:
		return fmt.Errorf("--ref-n %d must be 0 (all) or at least 2", o.RefN)
	case o.KIDSubsets < 1 || o.KIDSize < 2:
		return fmt.Errorf("--kid-subsets must be >= 1 and --kid-subset-size >= 2")
	case !(o.Threshold > 0 && o.Threshold <= 1):
		return fmt.Errorf("--confidence %v outside (0, 1]", o.Threshold)
	case o.Guidance != nil && !o.ClassBalanced:
		return fmt.Errorf("--guidance needs --class-balanced")
	case o.ClassPrior && !o.ClassBalanced:
		return fmt.Errorf("--class-prior needs --class-balanced")
	case o.ClassBalanced && o.NPZ != "":
		return fmt.Errorf("--class-balanced samples a model; it does not apply to --npz")
	}
	if o.Guidance != nil {
		if err := (generate.ClassSpec{Class: "0", Guidance: o.Guidance}).Validate([]string{"0"}); err != nil {
			return fmt.Errorf("--%v", err)
		}
	}
	if o.NPZ != "" {
		return nil
	}
	// FID scores all samples at once, so they are all kept: per image its float64 sample, the
	// float32 copy the classifier reads, a training image for the floor and the features of both
	// (a few KiB). Both data sets are 28x28 grey. Refused now rather than after hours of sampling or
	// in an allocation of terabytes.
	const dim = 28 * 28
	if err := sysmem.Check(fmt.Sprintf("scoring %d samples", o.N), float64(o.N)*(16*dim+8<<10)); err != nil {
		return fmt.Errorf("--n %d: %w", o.N, err)
	}
	standIn, err := schedule.New("linear", max(1000, o.Spec.Steps), false)
	if err != nil {
		return err
	}
	_, _, err = o.Spec.New(standIn)
	return err
}

// ClassLabels is the class of each of n images of a class-balanced evaluation over k classes: with
// no prior, image i has class i mod k; with prior (the labels of a reference set), class c gets
// a share of the n images proportional to its count in prior (largest remainders), and the images
// of each class are spread evenly over the indices (class c's j-th image at about (j + 1/2) n /
// n_c), so that any prefix of the job is close to the same mix.
func ClassLabels(n, k int, prior []uint8) ([]int, error) {
	labels := make([]int, n)
	if prior == nil {
		for i := range labels {
			labels[i] = i % k
		}
		return labels, nil
	}
	count := make([]int, k)
	for _, l := range prior {
		if int(l) >= k {
			return nil, fmt.Errorf("class prior: label %d outside the model's %d classes", l, k)
		}
		count[l]++
	}
	if len(prior) == 0 {
		return nil, fmt.Errorf("class prior: no labels")
	}
	share := make([]int, k)
	type rem struct {
		c int
		r float64
	}
	var rems []rem
	given := 0
	for c, m := range count {
		exact := float64(n) * float64(m) / float64(len(prior))
		share[c] = int(exact)
		given += share[c]
		rems = append(rems, rem{c, exact - float64(share[c])})
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for i := 0; given < n; i++ {
		share[rems[i].c]++
		given++
	}
	type slot struct {
		pos float64
		c   int
	}
	slots := make([]slot, 0, n)
	for c, m := range share {
		for j := range m {
			slots = append(slots, slot{(float64(j) + 0.5) / float64(m), c})
		}
	}
	sort.SliceStable(slots, func(a, b int) bool {
		if slots[a].pos != slots[b].pos {
			return slots[a].pos < slots[b].pos
		}
		return slots[a].c < slots[b].c
	})
	for i, s := range slots {
		labels[i] = s.c
	}
	return labels, nil
}
