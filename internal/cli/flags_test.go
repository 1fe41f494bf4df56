package cli

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// boundedFlag is one numeric flag of one command, as the tests walk them.
type boundedFlag struct {
	cmd  string // "cpuwhy", "cpuwhy top", ...
	flag *pflag.Flag
}

// allFlags lists every flag of every command of a fresh tree.
func allFlags() []boundedFlag {
	var flags []boundedFlag
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { flags = append(flags, boundedFlag{c.CommandPath(), f}) })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { flags = append(flags, boundedFlag{c.CommandPath(), f}) })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCmd(Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}))
	return flags
}

// inRange says whether a flag holds a value of its range.
func inRange(v pflag.Value) bool {
	switch f := v.(type) {
	case *intFlag:
		return *f.p >= f.r.min && *f.p <= f.r.max
	case *durationFlag:
		return *f.p >= f.r.min && *f.p <= f.r.max
	case *floatFlag:
		return *f.p >= f.r.min && *f.p <= f.r.max
	}
	return false
}

// hostileValues are what a careless user or a script types, and what
// once hung, panicked or fell back to ptrace.
var hostileValues = []string{
	"", " ", "x", "-", "-1", "-5", "0", "1", "1.5", "0x10", "1e9", "99999999999",
	"9223372036854775807", "9223372036854775808", "-9223372036854775808",
	"Inf", "+Inf", "-Inf", "NaN", "1e308", "-0", "0s", "-1s", "1ns", "100000h",
	"2562047h", "9999999999999999h", "1h1h", "5\x00", "5\n", "\x1b[2J",
}

// TestEveryNumericFlagIsBounded checks that no command has a number or a
// duration flag that is not bounded, that every default lies in its
// range, and that no value, hostile or at an edge, is accepted outside
// the range.
func TestEveryNumericFlagIsBounded(t *testing.T) {
	n := 0
	for _, bf := range allFlags() {
		f := bf.flag
		name := bf.cmd + " --" + f.Name
		switch f.Value.(type) {
		case *intFlag, *durationFlag, *floatFlag:
		default:
			switch f.Value.Type() {
			case "bool", "string", "stringSlice":
				continue // strings are checked where they are used (--format, --sort, --mechanism, --name)
			}
			t.Errorf("%s is a %s flag without bounds: define it with intVar, durationVar or floatVar", name, f.Value.Type())
			continue
		}
		n++
		// A PID's default, 0, means that none was given; no other
		// flag has a default it would refuse.
		if !inRange(f.Value) && !(notGiven[f.Name] && f.DefValue == "0") {
			t.Errorf("%s: default %s is outside its range", name, f.DefValue)
		}
		if !strings.Contains(f.Usage, " to ") {
			t.Errorf("%s: help %q does not state the range", name, f.Usage)
		}
		for _, v := range append(hostileValues, edges(f.Value)...) {
			before := f.Value.String()
			err := f.Value.Set(v)
			if err == nil && !inRange(f.Value) {
				t.Errorf("%s %q accepted as %s, outside its range", name, v, f.Value)
			}
			if err != nil && f.Value.String() != before {
				t.Errorf("%s %q refused but changed the value from %s to %s", name, v, before, f.Value)
			}
		}
	}
	if n < 20 {
		t.Errorf("found %d bounded flags; the walk missed commands", n)
	}
}

// notGiven are the flags whose default, outside their range, means that
// the flag was not given.
var notGiven = map[string]bool{"pid": true, "ns-pid": true}

// edges are the values just inside and just outside a flag's range.
func edges(v pflag.Value) []string {
	switch f := v.(type) {
	case *intFlag:
		return []string{strconv.Itoa(f.r.min - 1), strconv.Itoa(f.r.min), strconv.Itoa(f.r.max), strconv.Itoa(f.r.max + 1)}
	case *durationFlag:
		return []string{(f.r.min - 1).String(), f.r.min.String(), f.r.max.String(), (f.r.max + 1).String(),
			strconv.FormatFloat(f.r.max.Seconds()+0.001, 'f', -1, 64)}
	case *floatFlag:
		return []string{fmt.Sprint(math.Nextafter(f.r.min, math.Inf(-1))), fmt.Sprint(f.r.min), fmt.Sprint(f.r.max), fmt.Sprint(math.Nextafter(f.r.max, math.Inf(1)))}
	}
	return nil
}

func TestFlagRanges(t *testing.T) {
	tests := []struct {
		value pflag.Value
		in    []string
		out   []string
	}{
		{&intFlag{p: new(int), r: intRange{min: 0, max: 10}}, []string{"0", "10", "007"}, []string{"-1", "11", "0x1", "1.0", "1e1", " 1"}},
		{&floatFlag{p: new(float64), r: cpuShare}, []string{"0", "10", "12.5", "1000", "100000", "1e3"},
			[]string{"-0.001", "100000.01", "NaN", "nan", "Inf", "-Inf", "1e309", "x", ""}},
		{&durationFlag{p: new(time.Duration), r: durationRange{min: 100 * time.Millisecond, max: time.Hour}},
			[]string{"0.1", "100ms", "1", "3600", "1h", "59m60s", ".5"},
			[]string{"0", "0s", "0.0999", "99ms", "3600.001", "1h1ns", "NaN", "Inf", "-Inf", "1e9", "1e300", "-1", "3 s"}},
	}
	for _, tt := range tests {
		for _, v := range tt.in {
			if err := tt.value.Set(v); err != nil {
				t.Errorf("%q refused: %v", v, err)
			}
		}
		for _, v := range tt.out {
			if err := tt.value.Set(v); err == nil {
				t.Errorf("%q accepted as %s", v, tt.value)
			}
		}
	}
	if got := (intRange{min: 1, max: 1 << 22}).String(); got != "1 to 4,194,304" {
		t.Errorf("range written %q", got)
	}
	if got := (durationRange{min: 100 * time.Millisecond, max: 10 * time.Minute}).String(); got != "100ms to 10m" {
		t.Errorf("range written %q", got)
	}
}

// FuzzFlagValue gives every bounded flag of every command the same
// arbitrary value: none may panic or take a value outside its range.
func FuzzFlagValue(f *testing.F) {
	for _, v := range hostileValues {
		f.Add(v)
	}
	flags := allFlags()
	f.Fuzz(func(t *testing.T, v string) {
		for _, bf := range flags {
			switch bf.flag.Value.(type) {
			case *intFlag, *durationFlag, *floatFlag:
			default:
				continue
			}
			if err := bf.flag.Value.Set(v); err == nil && !inRange(bf.flag.Value) {
				t.Errorf("%s --%s %q accepted as %s, outside its range", bf.cmd, bf.flag.Name, v, bf.flag.Value)
			}
		}
	})
}

// TestFlagBoundsThroughBinary gives every bounded flag of every command,
// through the built binary, values just outside its range and values that
// once hung or misled (NaN, Inf, a huge count). Each must be refused in
// one line naming the flag and its range, with exit status 2, at once:
// before a target is looked at, let alone measured or traced (the
// target's TracerPid is watched throughout).
func TestFlagBoundsThroughBinary(t *testing.T) {
	cpuwhyBinary(t) // built before the clock starts
	target := startProgram(t, "idle")
	pid := strconv.Itoa(target.Process.Pid)
	traced := watchTracer(t, target.Process.Pid)
	for _, bf := range allFlags() {
		var values []string
		var want string
		switch v := bf.flag.Value.(type) {
		case *intFlag:
			values = []string{strconv.Itoa(v.r.min - 1), strconv.Itoa(v.r.max + 1), "99999999999", "-5", "NaN"}
			want = "from " + v.r.String()
		case *durationFlag:
			values = []string{(v.r.min - 1).String(), (v.r.max + 1).String(), "0", "0s", "-1", "NaN", "Inf", "1e9", "100000h"}
			want = "from " + v.r.String()
		case *floatFlag:
			values = []string{"-1", fmt.Sprint(v.r.max * 2), "NaN", "Inf", "-Inf", "1e309"}
			want = "from " + v.r.String()
		default:
			continue
		}
		args := strings.Fields(bf.cmd)[1:]
		name := flagName(bf.flag)
		for _, value := range values {
			if value == "-5" && bf.flag.Value.(*intFlag).r.min-1 == -5 {
				continue
			}
			if d, ok := bf.flag.Value.(*durationFlag); ok && (value == "0" || value == "0s") && d.r.min == 0 {
				continue // in range: watch --cooldown 0 is no cooldown
			}
			argv := append(append([]string{}, args...), name, value)
			if bf.flag.Name != "pid" {
				argv = append(argv, pid)
			}
			t.Run(strings.Join(argv[:len(argv)-1], " "), func(t *testing.T) {
				cpuwhyBinary(t) // built before the clock starts
				start := time.Now()
				code, out, errOut := runBinary(t, nil, argv...)
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("refused after %v: it went on to work first", took)
				}
				if code != 2 || out != "" {
					t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and nothing on stdout", code, out, errOut)
				}
				assertOneLine(t, errOut, name+" "+value+": ", want)
			})
		}
	}
	if traced.Load() {
		t.Error("a refused flag let cpuwhy trace the target")
	}
}

// watchTracer polls the TracerPid of pid until the test ends, and sets
// the flag it returns if anything ever traced it.
func watchTracer(t *testing.T, pid int) *atomic.Bool {
	var traced atomic.Bool
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err == nil && !bytes.Contains(status, []byte("\nTracerPid:\t0\n")) {
				traced.Store(true)
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return &traced
}

// TestIssue18Flags runs, through the built binary, each command line the
// issue found hanging, misleading or panicking.
func TestIssue18Flags(t *testing.T) {
	cpuwhyBinary(t) // built before the clock starts
	a := startProgram(t, "idle")
	b := startProgram(t, "idle")
	pa, pb := strconv.Itoa(a.Process.Pid), strconv.Itoa(b.Process.Pid)
	traced := watchTracer(t, a.Process.Pid)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"top", "-d", "100000h", pa}, []string{"-d 100000h: ", "from 100ms to 1h"}},
		{[]string{"top", "-d", "1e9", pa}, []string{"-d 1e9: ", "from 100ms to 1h"}},
		{[]string{"top", "-d", "Inf", pa}, []string{"-d Inf: "}},
		{[]string{"top", "-d", "NaN", pa}, []string{"-d NaN: "}},
		{[]string{"--threads", "-5", pa}, []string{"--threads -5: ", "from 1 to 1,000,000"}},
		{[]string{"syscalls", "--threads", "-5", pa}, []string{"--threads -5: ", "from 0 to 1,000,000, 0: all"}},
		{[]string{"top", "-w", "-5", pa}, []string{"-w -5: ", "from 0 to 10,000, 0: no limit"}},
		{[]string{"top", "--limit", "-5", pa}, []string{"--limit -5: ", "from 0 to 1,000,000, 0: all"}},
		{[]string{pa, "-p", pb}, []string{"PID " + pa + " and -p " + pb + " both name the target"}},
		{[]string{"top", pa, "-p", pb}, []string{"both name the target"}},
		{[]string{"syscalls", pa, "-p", pa}, []string{"both name the target"}},
		{[]string{"record", pa, "-p", pb}, []string{"both name the target"}},
		{[]string{"dump", pa, "-p", pb}, []string{"both name the target"}},
		{[]string{pa, "--name", "idle"}, []string{"give one of a PID, --container or --name"}},
		{[]string{"-d", "0s", pa}, []string{"-d 0s: give a duration from 100ms to 10m"}},
		{[]string{"record", "--top", "-3", "-o", "t.folded", pa}, []string{"--top -3: ", "from 0 to 1000"}},
		{[]string{"syscalls", "--max-keys", "99999999999", pa}, []string{"--max-keys 99999999999: ", "from 1 to 1,048,576"}},
		{[]string{"syscalls", "--time-every", "99999999999999", pa}, []string{"--time-every 99999999999999: "}},
		{[]string{"-F", "1000000", pa}, []string{"-F 1000000: ", "from 1 to 10,000"}},
		{[]string{"top", "-d", "\x1b[2J", pa}, []string{`-d "\x1b[2J": `}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cpuwhyBinary(t) // built before the clock starts
			start := time.Now()
			code, out, errOut := runBinary(t, nil, tt.args...)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("refused after %v", took)
			}
			if code != 2 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2", code, out, errOut)
			}
			assertOneLine(t, errOut, tt.want...)
			if strings.Contains(errOut, "\x1b") {
				t.Errorf("stderr echoes a raw escape: %q", errOut)
			}
		})
	}
	if traced.Load() {
		t.Error("a refused command line let cpuwhy trace the target")
	}
}

// TestWithinBoundsStillWork runs the edges of the ranges that matter most
// for real: the shortest windows and intervals, --top 0, and the largest
// table the eBPF tracer takes, which must load (no fallback to ptrace).
func TestWithinBoundsStillWork(t *testing.T) {
	busy := startProgram(t, "compute")
	pid := strconv.Itoa(busy.Process.Pid)
	tests := []struct {
		args []string
		want string // on stdout
	}{
		{[]string{"top", "-d", "0.1", "-w", "0", "--limit", "0", pid}, "cruncher"},
		{[]string{"top", "-d", "100ms", "-n", "2", "--json", pid}, `"interval_s":0.1`},
		{[]string{"record", "-d", "100ms", "--top", "0", pid}, "samples"},
		{[]string{"syscalls", "-d", "0.1", "--max-keys", strconv.Itoa(maxKeys.max), "--time-every", "1000000", "--json", pid}, `"mechanism":"ebpf"`},
		{[]string{"-d", "100ms", "-F", "10000", "--threads", "1", pid}, "cpuwhy used"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runBinary(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("stdout lacks %q:\n%s", tt.want, out)
			}
			if strings.Contains(errOut, "falling back") || strings.Contains(errOut, "panic") {
				t.Errorf("stderr: %s", errOut)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1000", 10000: "10,000", 1 << 20: "1,048,576", -5: "-5", math.MaxInt32: "2,147,483,647"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
