// Command benchtable reads `go test -bench` output and prints one Markdown
// table: for every benchmark and metric, the median of its runs and their
// spread.
//
//	benchtable bench.out [more.out ...]   # or: go test -bench . | benchtable
//
// Benchmarks named X/emitd and X/raw share a row: emitd's first metric
// beside raw Watermill's, with the ratio emitd / raw. The ratio is the
// median of the per-run ratios, run i of emitd with run i of raw: `make
// bench` runs them one after the other, so each pair saw the same machine.
//
// The spread (±) is the largest distance of one run from the median, as a
// share of the median: with the 5 runs of a default `make bench`, a
// confidence interval (what benchstat prints) would be wider than the data.
//
// -ratio A:B (repeatable) adds a second table: benchmark A's first metric
// over B's, again the median of the per-run ratios. `make bench` uses it to
// put the PostgreSQL store beside SQLite on the same broker.
//
// Lines under the table list the benchmarks that were skipped or failed,
// with their reasons (they appear in `go test -v` output).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// ratioFlags are the -ratio A:B pairs, in order.
type ratioFlags [][2]string

func (r *ratioFlags) String() string { return fmt.Sprint(*r) }
func (r *ratioFlags) Set(v string) error {
	a, b, ok := strings.Cut(v, ":")
	if !ok || a == "" || b == "" {
		return fmt.Errorf("want A:B (two benchmark names), got %q", v)
	}
	*r = append(*r, [2]string{a, b})
	return nil
}

func main() {
	var ratios ratioFlags
	flag.Var(&ratios, "ratio", "`A:B`: also print benchmark A's first metric over B's (repeatable), e.g. Throughput/postgres-1/emitd:Throughput/nats/emitd")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: benchtable [-ratio A:B]... [go test -bench output files; default stdin]")
		flag.PrintDefaults()
	}
	flag.Parse()
	var inputs []input
	if flag.NArg() == 0 {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			fatal(err)
		}
		inputs = append(inputs, input{"stdin", data})
	}
	for _, name := range flag.Args() {
		data, err := os.ReadFile(name)
		if err != nil {
			fatal(err)
		}
		inputs = append(inputs, input{name, data})
	}
	t, err := parse(inputs)
	if err != nil {
		fatal(err)
	}
	t.ratios = ratios
	if len(t.series) == 0 && len(t.notes) == 0 {
		fatal(fmt.Errorf("no benchmark results in the input"))
	}
	if err := t.write(os.Stdout); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchtable:", err)
	os.Exit(1)
}

type input struct {
	name string
	data []byte
}

// series is every run of one benchmark: its values per unit, in run order.
type series struct {
	pkg, name string
	units     []string // in order of first appearance
	values    map[string][]float64
}

type table struct {
	series []*series
	notes  []string  // skipped and failed benchmarks, with their reasons
	loads  []float64 // 1-minute load averages the runs logged as they ended
	ratios [][2]string
}

var (
	gomaxprocs = regexp.MustCompile(`-\d+$`)
	// loadLine is what the bench package logs as each run ends.
	loadLine = regexp.MustCompile(`load average: ([0-9.]+) [0-9.]+ [0-9.]+`)
)

func parse(inputs []input) (*table, error) {
	t := &table{}
	byKey := map[string]*series{}
	for _, in := range inputs {
		r := benchfmt.NewReader(bytes.NewReader(in.data), in.name)
		for r.Scan() {
			switch rec := r.Result(); rec := rec.(type) {
			case *benchfmt.SyntaxError:
				fmt.Fprintln(os.Stderr, "benchtable: skipping:", rec)
			case *benchfmt.Result:
				pkg := rec.GetConfig("pkg")
				name := gomaxprocs.ReplaceAllString(strings.TrimPrefix(rec.Name.String(), "Benchmark"), "")
				key := pkg + "\x00" + name
				s := byKey[key]
				if s == nil {
					s = &series{pkg: pkg, name: name, values: map[string][]float64{}}
					byKey[key] = s
					t.series = append(t.series, s)
				}
				for _, v := range rec.Values {
					// As the benchmark reported it: the reader turns e.g.
					// MB/s into B/s and ns/op into sec/op.
					unit, value := v.Unit, v.Value
					if v.OrigUnit != "" {
						unit, value = v.OrigUnit, v.OrigValue
					}
					if _, ok := s.values[unit]; !ok {
						s.units = append(s.units, unit)
					}
					s.values[unit] = append(s.values[unit], value)
				}
			}
		}
		if err := r.Err(); err != nil {
			return nil, err
		}
		t.notes = append(t.notes, statusNotes(in.data)...)
		for _, m := range loadLine.FindAllSubmatch(in.data, -1) {
			if f, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
				t.loads = append(t.loads, f)
			}
		}
	}
	return t, nil
}

// statusNotes lists the benchmarks that were skipped or failed, each with
// the first line it logged, and packages that did not build or crashed.
// With -v the log comes before the "--- SKIP: name" line, under the
// benchmark's own name line; without it, a failure's log follows its line.
func statusNotes(data []byte) []string {
	type note struct{ what, name, msg string }
	var notes []note
	header, headerMsg := "", "" // the last "BenchmarkX/y" line of -v output, and its first log line
	var waiting *note           // a note whose log follows it
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		indented := strings.HasPrefix(line, "    ") && trimmed != ""
		if indented {
			msg := logMessage(trimmed)
			if waiting != nil {
				waiting.msg, waiting = msg, nil
			} else if header != "" && headerMsg == "" {
				headerMsg = msg
			}
			continue
		}
		waiting = nil
		what, name, ok := "", "", false
		if name, ok = strings.CutPrefix(trimmed, "--- SKIP: "); ok {
			what = "skipped"
		} else if name, ok = strings.CutPrefix(trimmed, "--- FAIL: "); ok {
			what = "FAILED"
		}
		switch {
		case ok:
			n := note{what: what, name: name}
			if name == header {
				n.msg = headerMsg
			}
			notes = append(notes, n)
			if n.msg == "" {
				waiting = &notes[len(notes)-1]
			}
		case strings.HasPrefix(line, "panic: ") || (strings.HasPrefix(line, "FAIL\t") && strings.Contains(line, "[")):
			notes = append(notes, note{what: "FAILED", name: strings.ReplaceAll(line, "\t", " ")})
		case strings.HasPrefix(line, "Benchmark") && !strings.ContainsAny(line, " \t"):
			header, headerMsg = line, ""
		default:
			header, headerMsg = "", ""
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range notes {
		// A parent fails with its failed sub-benchmark, saying nothing more.
		if n.msg == "" && slices.ContainsFunc(notes, func(o note) bool { return strings.HasPrefix(o.name, n.name+"/") }) {
			continue
		}
		s := n.what + " " + n.name
		if n.msg != "" {
			s += ": " + n.msg
		}
		if !seen[s] { // each of the runs says it again
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// logMessage drops the "file_test.go:12: " that testing puts before a log line.
func logMessage(line string) string {
	if pos, msg, ok := strings.Cut(line, ": "); ok && strings.Contains(pos, ".go:") && !strings.Contains(pos, " ") {
		return msg
	}
	return line
}

// shown are the units a row prints: the benchmark's own metrics, without
// the testing package's per-iteration figures when it reported any (for
// one-iteration runs those are the run's set-up and wall time).
func (s *series) shown() []string {
	builtin := func(u string) bool { return u == "ns/op" || u == "sec/op" || u == "B/op" || u == "allocs/op" }
	var own []string
	for _, u := range s.units {
		if !builtin(u) {
			own = append(own, u)
		}
	}
	if len(own) == 0 {
		return s.units
	}
	return own
}

type row struct {
	name, unit string
	values     []float64
	raw        []float64 // the paired raw run's first metric, if any
	rawUnit    string
}

func (t *table) rows() []row {
	// Pair X/emitd with X/raw of the same package.
	paired := map[*series]*series{}
	consumed := map[*series]bool{}
	for _, s := range t.series {
		prefix, ok := strings.CutSuffix(s.name, "/emitd")
		if !ok {
			continue
		}
		for _, r := range t.series {
			if r.pkg == s.pkg && r.name == prefix+"/raw" && len(r.shown()) > 0 {
				paired[s], consumed[r] = r, true
			}
		}
	}
	pkgs := map[string]bool{}
	for _, s := range t.series {
		pkgs[s.pkg] = true
	}
	var rows []row
	for _, s := range t.series {
		if consumed[s] {
			continue
		}
		name := s.name
		if len(pkgs) > 1 {
			name = s.pkg[strings.LastIndex(s.pkg, "/")+1:] + " " + name
		}
		raw := paired[s]
		if raw != nil {
			name = strings.TrimSuffix(name, "/emitd")
		}
		for i, u := range s.shown() {
			r := row{name: name, unit: u, values: s.values[u]}
			if raw != nil && i == 0 {
				r.rawUnit = raw.shown()[0]
				r.raw = raw.values[r.rawUnit]
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func (t *table) write(w io.Writer) error {
	var b strings.Builder
	rows := t.rows()
	runs := map[int]bool{}
	for _, r := range rows {
		runs[len(r.values)] = true
	}
	if len(runs) == 1 {
		for n := range runs {
			plural := "s"
			if n == 1 {
				plural = ""
			}
			fmt.Fprintf(&b, "Medians of %d run%s of each benchmark.\n\n", n, plural)
		}
	}
	// The raw Watermill columns only when some row has a raw run beside it.
	paired := slices.ContainsFunc(rows, func(r row) bool { return len(r.raw) > 0 })
	b.WriteString("| benchmark | metric | median | ± | runs |")
	if paired {
		b.WriteString(" raw Watermill, same broker | emitd / raw |")
	}
	b.WriteString("\n|---|---|---:|---:|---:|")
	if paired {
		b.WriteString("---:|---:|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		med, spread := summarize(r.values)
		spreadCell := "–"
		if len(r.values) > 1 {
			spreadCell = "±" + percent(spread)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d |", r.name, r.unit, number(med), spreadCell, len(r.values))
		if paired {
			rawCell, ratioCell := "", ""
			if len(r.raw) > 0 {
				rm, rs := summarize(r.raw)
				rawCell = fmt.Sprintf("%s %s ±%s", number(rm), r.rawUnit, percent(rs))
				if len(r.raw) != len(r.values) {
					rawCell += fmt.Sprintf(" (%d runs)", len(r.raw))
				}
				ratioCell = ratio(r.values, r.raw)
			}
			fmt.Fprintf(&b, " %s | %s |", rawCell, ratioCell)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n± is the largest distance of one run from the median, as a share of the median.")
	if paired {
		b.WriteString(" emitd / raw is the median of the ratios of runs made one after the other.")
	}
	b.WriteString("\n")
	t.writeRatios(&b)
	if len(t.loads) > 0 {
		l := slices.Clone(t.loads)
		slices.Sort(l)
		med, _ := summarize(l)
		fmt.Fprintf(&b, "Machine load (1-minute load average) as the runs ended: median %.1f, from %.1f to %.1f.\n", med, l[0], l[len(l)-1])
	}
	if len(t.notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRatios prints the -ratio table: each pair whose benchmarks both ran.
func (t *table) writeRatios(b *strings.Builder) {
	find := func(name string) *series {
		for _, s := range t.series {
			if s.name == name && len(s.shown()) > 0 {
				return s
			}
		}
		return nil
	}
	header := false
	for _, p := range t.ratios {
		a, base := find(p[0]), find(p[1])
		if a == nil || base == nil {
			continue
		}
		if !header {
			b.WriteString("\n| benchmark | over | ratio |\n|---|---|---:|\n")
			header = true
		}
		ua, ub := a.shown()[0], base.shown()[0]
		fmt.Fprintf(b, "| %s | %s | %s |\n", a.name, base.name, ratio(a.values[ua], base.values[ub]))
	}
	if header {
		b.WriteString("\nEach ratio is the median of the ratios of runs made in the same round.\n")
	}
}

// summarize returns the median and the largest relative distance of a value
// from it (0 for one value).
func summarize(v []float64) (median, spread float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	if median == 0 {
		return 0, 0
	}
	for _, x := range s {
		spread = max(spread, math.Abs(x-median)/math.Abs(median))
	}
	return median, spread
}

// ratio is the median of emitd[i]/raw[i] over the runs both have, with its
// spread.
func ratio(emitd, raw []float64) string {
	var rs []float64
	for i := range min(len(emitd), len(raw)) {
		if raw[i] != 0 {
			rs = append(rs, emitd[i]/raw[i])
		}
	}
	if len(rs) == 0 {
		return ""
	}
	m, s := summarize(rs)
	return fmt.Sprintf("%s ±%s", number(m), percent(s))
}

// number prints 3 significant digits, without exponents, with thousands
// separators: 14,200; 1,480; 127; 2.42; 0.104.
func number(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v == 0 {
		return "0"
	}
	mag := func(x float64) int { return int(math.Floor(math.Log10(math.Abs(x)))) }
	p := math.Pow(10, float64(mag(v)-2))
	v = math.Round(v/p) * p // 999.6 becomes 1,000, of magnitude 3
	if m := mag(v); m < 3 {
		return strconv.FormatFloat(v, 'f', max(0, 2-m), 64)
	}
	digits := strconv.FormatFloat(v, 'f', 0, 64)
	sign := ""
	if digits[0] == '-' {
		sign, digits = "-", digits[1:]
	}
	var out []byte
	for i := range len(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, digits[i])
	}
	return sign + string(out)
}

func percent(f float64) string {
	switch {
	case math.IsNaN(f):
		return "–"
	case f*100 < 1:
		return fmt.Sprintf("%.1f%%", f*100)
	default:
		return fmt.Sprintf("%.0f%%", f*100)
	}
}
