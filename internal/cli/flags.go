package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/cpuwhy/cpuwhy/internal/syscalls"
)

// Every number and duration a command takes is bounded, and checked as the
// flag is parsed: a value out of range is refused in one line naming the
// flag and the range (exit status 2) before anything is measured, never
// passed on to become a hang (top -d 100000h), a nonsense report (-d NaN),
// a panic (record --top -3) or a fallback to ptrace (a BPF table too big
// to create). The help of each flag states its range.
//
// The bounds, and why each is where it is:
var (
	// diagnoseWindow bounds the diagnosis and syscalls windows. Below
	// 100 ms the kernel's CPU accounting (10 ms ticks) and 99 Hz sampling
	// see next to nothing; above 10 minutes a forgotten ptrace fallback
	// slows a production target for too long, and a verdict says no more.
	diagnoseWindow = durationRange{min: 100 * time.Millisecond, max: 10 * time.Minute}
	// recordWindow bounds a recording: a profile of an hour says no more
	// than one of ten minutes, and sampling is cheap for the target.
	recordWindow = durationRange{min: 100 * time.Millisecond, max: time.Hour}
	// topInterval bounds top's interval: below 100 ms a thread's CPU is a
	// handful of 10 ms ticks, 0% or 100%, and the scan of /proc would
	// itself take a core; an hour between two reports is as slow as a
	// monitor gets.
	topInterval = durationRange{min: 100 * time.Millisecond, max: time.Hour}
	// topReports bounds top -n: a million reports one second apart run for
	// eleven days.
	topReports = intRange{min: 1, max: 1_000_000}
	// frequency bounds -F: perf's own limit (kernel.perf_event_max_sample_rate)
	// is usually lower, and at 10 kHz unwinding costs more than a core.
	frequency = intRange{min: 1, max: 10_000}
	// pidRange is what a PID can be: PID_MAX_LIMIT, the most
	// kernel.pid_max allows on 64-bit, is 2^22.
	pidRange = intRange{min: 1, max: 1 << 22}
	// listed bounds how many rows a text report lists; a million is more
	// threads or processes than a host runs.
	listed = intRange{min: 1, max: 1_000_000}
	// listedOrAll is listed with 0 for "no limit".
	listedOrAll = intRange{min: 0, max: 1_000_000, zero: "all"}
	// widthRange bounds top's command column, in characters.
	widthRange = intRange{min: 0, max: 10_000, zero: "no limit"}
	// hottest bounds record --top: the summary's lists, 0 for none.
	hottest = intRange{min: 0, max: 1000, zero: "none"}
	// timeEvery bounds --time-every: one call in a million timed is
	// already nothing to measure; 0 turns timing off.
	timeEvery = intRange{min: 0, max: syscalls.TimeEveryLimit, zero: "no timing"}
	// maxKeys bounds --max-keys, the BPF table of (thread, syscall,
	// result, fd): see syscalls.KeysLimit.
	maxKeys = intRange{min: 1, max: syscalls.KeysLimit}
	// cpuShare bounds a flag in percent of one core (a threshold such as
	// --min-cpu): a process on a thousand cores reaches 100,000%.
	cpuShare = floatRange{min: 0, max: 100_000}
)

// intRange is the range of an integer flag.
type intRange struct {
	min, max int
	// zero says what 0 means, when 0 is in range and means more than a
	// count of zero.
	zero string
}

func (r intRange) String() string {
	s := fmt.Sprintf("%s to %s", thousands(r.min), thousands(r.max))
	if r.zero != "" {
		s += ", 0: " + r.zero
	}
	return s
}

func (r intRange) want() string {
	return "give a whole number from " + r.String()
}

// durationRange is the range of a duration flag, both ends included.
type durationRange struct{ min, max time.Duration }

func (r durationRange) String() string {
	return fmt.Sprintf("%s to %s", shortDuration(r.min), shortDuration(r.max))
}

func (r durationRange) want() string {
	return "give a duration from " + r.String() + " (seconds, or with a unit: 500ms, 2m)"
}

// floatRange is the range of a float flag, both ends included.
type floatRange struct{ min, max float64 }

func (r floatRange) String() string {
	return fmt.Sprintf("%s to %s", thousands(int(r.min)), thousands(int(r.max)))
}

func (r floatRange) want() string {
	return "give a number from " + r.String()
}

// rangeError is a flag value out of its range, or not a value of its kind
// at all. Its text says what is accepted; flagError names the flag and the
// value.
type rangeError struct{ want string }

func (e *rangeError) Error() string { return e.want }

// intFlag is an int flag that accepts only its range.
type intFlag struct {
	p *int
	r intRange
}

func (f *intFlag) String() string { return strconv.Itoa(*f.p) }
func (f *intFlag) Type() string   { return "int" }

func (f *intFlag) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < int64(f.r.min) || v > int64(f.r.max) {
		return &rangeError{want: f.r.want()}
	}
	*f.p = int(v)
	return nil
}

// durationFlag is a duration flag that accepts only its range, given as
// seconds (0.5, as top takes its interval) or as a Go duration (500ms).
type durationFlag struct {
	p *time.Duration
	r durationRange
}

func (f *durationFlag) String() string { return shortDuration(*f.p) }
func (f *durationFlag) Type() string   { return "duration" }

func (f *durationFlag) Set(s string) error {
	d, ok := parseDuration(s)
	if !ok || d < f.r.min || d > f.r.max {
		return &rangeError{want: f.r.want()}
	}
	*f.p = d
	return nil
}

// maxSeconds keeps a number of seconds far inside what a time.Duration
// holds (292 years), so that converting it cannot overflow: every range
// ends well below it.
const maxSeconds = 1e9

// parseDuration reads seconds or a Go duration. NaN, infinities and
// numbers too large to convert are not durations: converting them to a
// time.Duration gives a negative or meaningless value.
func parseDuration(s string) (time.Duration, bool) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.Abs(secs) > maxSeconds {
			return 0, false
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// floatFlag is a float flag that accepts only its range: never NaN, which
// every comparison would let through, nor an infinity.
type floatFlag struct {
	p *float64
	r floatRange
}

func (f *floatFlag) String() string { return strconv.FormatFloat(*f.p, 'g', -1, 64) }
func (f *floatFlag) Type() string   { return "float" }

func (f *floatFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < f.r.min || v > f.r.max {
		return &rangeError{want: f.r.want()}
	}
	*f.p = v
	return nil
}

// floatVar defines a float flag bounded by r, with r in its help.
func floatVar(fs *pflag.FlagSet, p *float64, name, short string, def float64, r floatRange, usage string) {
	*p = def
	fs.VarP(&floatFlag{p: p, r: r}, name, short, usage+" ("+r.String()+")")
}

// intVar defines an int flag bounded by r, with r in its help.
func intVar(fs *pflag.FlagSet, p *int, name, short string, def int, r intRange, usage string) {
	*p = def
	fs.VarP(&intFlag{p: p, r: r}, name, short, usage+" ("+r.String()+")")
}

// durationVar defines a duration flag bounded by r, with r in its help.
func durationVar(fs *pflag.FlagSet, p *time.Duration, name, short string, def time.Duration, r durationRange, usage string) {
	*p = def
	fs.VarP(&durationFlag{p: p, r: r}, name, short, usage+" ("+r.String()+")")
}

// flagError turns pflag's error for a value out of range into one line
// that names the flag as the user types it and says what it accepts.
func flagError(err error) error {
	var invalid *pflag.InvalidValueError
	var bad *rangeError
	if errors.As(err, &invalid) && errors.As(err, &bad) {
		return usageError{fmt.Errorf("%s %s: %s", flagName(invalid.GetFlag()), quoteArg(invalid.GetValue()), bad.want)}
	}
	return usageError{err}
}

// flagName names f as a user would type it: by its short form if it has
// one, the one the help shows first.
func flagName(f *pflag.Flag) string {
	if f.Shorthand != "" {
		return "-" + f.Shorthand
	}
	return "--" + f.Name
}

// quoteArg quotes a value only when it has to: a plain -d 0s reads better
// than -d "0s", but an empty value, spaces or control bytes need quotes to
// be seen.
func quoteArg(s string) string {
	if q := strconv.Quote(s); s == "" || strings.ContainsAny(s, " \t") || q[1:len(q)-1] != s {
		return q
	}
	return s
}

// thousands writes n with commas between groups of three digits: the
// ranges reach into millions.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 || len(s) <= 4 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// shortDuration writes d without the zero units time.Duration's String
// adds (10m, not 10m0s).
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
