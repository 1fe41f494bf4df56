package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cpuwhy/cpuwhy/internal/cpuprofile"
	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/flame"
	"github.com/cpuwhy/cpuwhy/internal/outfile"
	"github.com/cpuwhy/cpuwhy/internal/target"
)

type recordOptions struct {
	global  *globalOptions
	streams Streams

	spec      target.Spec
	duration  time.Duration
	frequency int
	output    string
	format    string
	kernel    bool
	debugDirs []string
	noAttach  bool
	top       int
}

func newRecordCmd(g *globalOptions, s Streams) *cobra.Command {
	o := &recordOptions{global: g, streams: s}
	cmd := &cobra.Command{
		Use:   "record [PID] [-o FILE]",
		Short: "Sample where a process spends its CPU, with named stacks, into a profile",
		Long: `Sample the threads of one process on CPU (perf_event_open, -F per second of
CPU), unwind each user stack with the call frame information of the target's
own binaries (stripped, without frame pointers, inside a container: it works
from the host), name the frames from what the binaries carry, and write the
profile by file name: .pb.gz (pprof), .folded (flamegraph.pl) or .html (a
self-contained interactive flame graph). Without -o, as perf record writes
perf.data, the profile goes to cpuwhy.pb.gz in the current directory (or
cpuwhy.folded, cpuwhy.html with --format), and a profile already there is
kept as cpuwhy.pb.gz.old. The hottest stacks are printed too.

Frames nothing names print as module+0xoffset, and the report says which
modules lack symbols and how to get them (--debug-dir).`,
		Example: `  cpuwhy record 5072 -o vpn.html
  cpuwhy record --container vpn -d 30s -F 199 -o vpn.pb.gz && go tool pprof -top vpn.pb.gz
  cpuwhy record --name vpnserver -o out.folded`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: pidCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pidArg(args, &o.spec); err != nil {
				return err
			}
			return runRecord(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	addTargetFlags(cmd, &o.spec)
	durationVar(f, &o.duration, "duration", "d", 10*time.Second, recordWindow, "how long to record")
	intVar(f, &o.frequency, "frequency", "F", 99, frequency, "samples per second of CPU, per thread")
	f.StringVarP(&o.output, "output", "o", "", "profile file: .pb.gz, .folded or .html (default cpuwhy.pb.gz)")
	f.StringVar(&o.format, "format", "", "pprof, folded or html, whatever the file name")
	f.BoolVar(&o.kernel, "kernel", true, "record kernel stacks too")
	f.BoolVar(&o.noAttach, "no-attach", false, "never ask the target for the names of its code: a JVM is otherwise asked, through its attach mechanism, for the perf map of the code its JIT compiled (jcmd Compiler.perfmap)")
	f.StringSliceVar(&o.debugDirs, "debug-dir", nil, "directory of debug files (.build-id/xx/rest.debug, <path>.debug, debuglink names)")
	intVar(f, &o.top, "top", "", 5, hottest, "hottest functions and stacks printed")
	_ = cmd.RegisterFlagCompletionFunc("format", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"pprof", "folded", "html"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func runRecord(ctx context.Context, o *recordOptions) error {
	format, err := outputFormat(o.output, o.format)
	if err != nil {
		return usageError{err}
	}
	output, open := o.output, openOutput
	if output == "" {
		output, open = defaultOutput(format), openDefault
	}
	out, err := open(ctx, o.streams, output)
	if err != nil {
		return err
	}
	defer out.Close()
	resolver := o.global.resolver()
	t, err := o.global.selector(resolver).Select(ctx, o.spec)
	if err != nil {
		return err
	}
	progress, endProgress := o.progressFunc(t, output)
	res, err := cpuprofile.Record(ctx, t.PID, cpuprofile.Options{
		FS: o.global.procFS(), Frequency: o.frequency, Duration: o.duration, Kernel: o.kernel,
		DebugDirs: o.debugDirs, NoAttach: o.noAttach, Progress: progress, NsPID: t.NsPID,
	})
	endProgress()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("recording %s: %w", t, err)
	}
	if res == nil {
		return err
	}
	if len(res.Execs) > 0 {
		// It runs another program now; a note says which it ran before.
		t.Name = res.Execs[len(res.Execs)-1].To
	}
	p := res.Profile
	p.Process, p.Container = t.Name, t.ContainerLabel()
	if out != nil {
		if err := writeProfile(out, format, p); err != nil {
			return err
		}
	}
	w := o.streams.Out
	escape.Fprintf(w, "cpuwhy record: %s, %d samples in %.1fs, %.0f%% of them unwound to their thread's start\n",
		t, res.Samples, p.Duration.Seconds(), percentOf(res.UnwoundToStart, res.Samples))
	if res.Lost+res.Dropped > 0 {
		escape.Fprintf(w, "note: %d samples lost by the kernel, %d dropped over the limits\n", res.Lost, res.Dropped)
	}
	for _, n := range res.Notes {
		escape.Fprintf(w, "note: %s\n", n)
	}
	if err := flame.WriteTop(w, p, o.top); err != nil {
		return err
	}
	if o.output == "" {
		escape.Fprintf(w, "profile written to %s (no -o given)%s\n", output, readHint(output, format))
	} else {
		escape.Fprintf(w, "profile written to %s\n", output)
	}
	return nil
}

// openOutput checks -o before the window, and opens it when it is written
// in place (a device, a FIFO): a path that cannot take the profile fails
// now, not after the whole window. No -o, no file (nil, which Close
// accepts).
func openOutput(ctx context.Context, s Streams, path string) (*outfile.File, error) {
	if path == "" {
		return nil, nil
	}
	out, err := openFile(ctx, s, path)
	switch {
	case errors.Is(err, context.Canceled):
		return nil, err
	case err != nil:
		return nil, usageError{fmt.Errorf("-o %s: %w", path, err)}
	}
	return out, nil
}

// openDefault opens the profile the user did not name, as perf record
// writes perf.data: the last one kept as path.old, all before the window.
func openDefault(ctx context.Context, s Streams, path string) (*outfile.File, error) {
	err := keepOld(path)
	var out *outfile.File
	if err == nil {
		out, err = openFile(ctx, s, path)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("cannot write the default profile %s in %s: %w; give -o FILE in a writable directory", path, absDir(filepath.Dir(path)), err)
	}
	return out, err
}

// openFile opens path through outfile, writing to our own stdout or
// stderr when the path is one of them.
func openFile(ctx context.Context, s Streams, path string) (*outfile.File, error) {
	var streams []*os.File
	for _, w := range []io.Writer{s.Out, s.Err} {
		if f, ok := w.(*os.File); ok {
			streams = append(streams, f)
		}
	}
	return outfile.Open(ctx, path, outfile.Options{
		Streams: streams,
		Waiting: func() {
			escape.Fprintf(s.Err, "cpuwhy: waiting for a process to read the FIFO %s (Ctrl-C to give up)\n", path)
		},
	})
}

// writeProfile writes p to out in format f.
func writeProfile(out *outfile.File, f flame.Format, p *flame.Profile) error {
	err := out.Write(func(w io.Writer) error { return flame.Write(w, f, p) })
	if err != nil {
		return fmt.Errorf("writing the %s profile: %w", f, err)
	}
	return nil
}

// outputFormat is the format to write: --format if given, else the file
// name's, else pprof, the format of the default file.
func outputFormat(path, name string) (flame.Format, error) {
	if name != "" {
		return flame.ParseFormat(name)
	}
	if path == "" {
		return flame.FormatPprof, nil
	}
	return flame.FormatOf(path)
}

// defaultOutput is where a profile goes without -o. A recording that
// leaves nothing behind wastes the window it took (perf record writes
// perf.data for the same reason); pprof is the default format because
// go tool pprof, pprof's web UI and most profilers' viewers read it.
func defaultOutput(f flame.Format) string {
	switch f {
	case flame.FormatFolded:
		return "cpuwhy.folded"
	case flame.FormatHTML:
		return "cpuwhy.html"
	}
	return "cpuwhy.pb.gz"
}

// readHint tells a user who did not choose the file how to open it.
func readHint(path string, f flame.Format) string {
	switch f {
	case flame.FormatPprof:
		return "; read it with go tool pprof " + path + ", or give -o FILE.html for a flame graph"
	case flame.FormatFolded:
		return "; flamegraph.pl " + path + " draws it"
	case flame.FormatHTML:
		return "; open it in a browser"
	}
	return ""
}

func absDir(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}

// keepOld renames a profile already at the default path to path.old, as
// perf record keeps perf.data.old: the user did not name the file, so
// replacing the last recording would lose one they never chose to drop.
func keepOld(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.Rename(path, path+".old"); err != nil {
		return fmt.Errorf("keeping the previous profile as %s.old: %w", path, err)
	}
	return nil
}

func percentOf(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// progressFunc reports the recording's progress on a terminal's stderr.
func (o *recordOptions) progressFunc(t target.Target, output string) (report func(time.Duration), end func()) {
	return progressLine(o.streams, fmt.Sprintf("recording %s for %v into %s (Ctrl-C to stop early)", t, o.duration, output), o.duration)
}

// progressLine reports a window's progress on a terminal's stderr: a
// header, then one line rewritten each second; nil (no progress) for pipes
// and files. end finishes that line, to be called once the window is over
// however it ended: Ctrl-C, the target's exit, or the window closing just
// before the last tick leave it open, and the summary or error would
// follow on the same line.
func progressLine(s Streams, header string, window time.Duration) (report func(time.Duration), end func()) {
	f := stderrTerminal(s)
	if f == nil {
		return nil, func() {}
	}
	escape.Fprintf(f, "cpuwhy: %s\n", header)
	// The instruments call report from their own goroutine and have
	// stopped calling it when they return, before end is called.
	open := false
	report = func(elapsed time.Duration) {
		escape.Fprintf(f, "\r%5.0fs / %.0fs", elapsed.Seconds(), window.Seconds())
		open = true
	}
	end = func() {
		if open {
			escape.Fprintf(f, "\n")
			open = false
		}
	}
	return report, end
}
