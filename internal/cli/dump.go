package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/pstack"
	"github.com/cpuwhy/cpuwhy/internal/target"
)

type dumpOptions struct {
	global    *globalOptions
	streams   Streams
	spec      target.Spec
	json      bool
	debugDirs []string
	noAttach  bool
}

func newDumpCmd(g *globalOptions, s Streams) *cobra.Command {
	o := &dumpOptions{global: g, streams: s}
	cmd := &cobra.Command{
		Use:   "dump [PID]",
		Short: "Print the current stack of every thread, like pstack",
		Long: `Print the current stack of every thread of one process, with thread names,
like pstack or eu-stack, from the host: each thread is stopped only for as
long as it takes to read its registers and copy its stack (well under a
millisecond), then runs on; stacks are unwound with the binaries' call frame
information and named from what they carry.`,
		Example: `  cpuwhy dump 5072
  cpuwhy dump --container vpn --json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: pidCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pidArg(args, &o.spec); err != nil {
				return err
			}
			return runDump(cmd.Context(), o)
		},
	}
	addTargetFlags(cmd, &o.spec)
	cmd.Flags().BoolVar(&o.json, "json", false, "print the stacks as JSON")
	cmd.Flags().BoolVar(&o.noAttach, "no-attach", false, "never ask the target for the names of its code: a JVM is otherwise asked, through its attach mechanism, for the perf map of the code its JIT compiled (jcmd Compiler.perfmap)")
	cmd.Flags().StringSliceVar(&o.debugDirs, "debug-dir", nil, "directory of debug files")
	return cmd
}

// dumpThread is a thread's stack in --json.
type dumpThread struct {
	TID    int      `json:"tid"`
	Name   string   `json:"name"`
	State  string   `json:"state"`
	Frames []string `json:"frames"`
	HeldUs int64    `json:"held_us"`
	Error  string   `json:"error,omitempty"`
}

func runDump(ctx context.Context, o *dumpOptions) error {
	sel := o.global.selector(o.global.resolver())
	t, err := sel.Select(ctx, o.spec)
	if err != nil {
		return err
	}
	if err := sel.CheckTrace(t.PID); err != nil {
		return err
	}
	threads, err := pstack.Dump(ctx, t.PID, pstack.Options{FS: o.global.procFS(), DebugDirs: o.debugDirs, NoAttach: o.noAttach, NsPID: t.NsPID})
	switch {
	case errors.Is(err, pstack.ErrSelf) || errors.Is(err, pstack.ErrNoStacks) || errors.Is(err, pstack.ErrExited):
		return err // each names the process and says what happened
	case err != nil:
		return fmt.Errorf("dumping %s: %w", t, err)
	}
	if o.json {
		out := struct {
			PID     int          `json:"pid"`
			Name    string       `json:"name"`
			Threads []dumpThread `json:"threads"`
		}{PID: t.PID, Name: t.Name, Threads: []dumpThread{}}
		for _, th := range threads {
			d := dumpThread{TID: th.TID, Name: th.Name, State: th.State, Frames: []string{}, HeldUs: th.Held.Microseconds()}
			for _, f := range th.Frames {
				d.Frames = append(d.Frames, f.String())
			}
			if th.Err != nil {
				d.Error = th.Err.Error()
			}
			out.Threads = append(out.Threads, d)
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = o.streams.Out.Write(append(escape.JSON(b), '\n'))
		return err
	}
	w := o.streams.Out
	escape.Fprintf(w, "cpuwhy dump: %s, %d threads\n", t, len(threads))
	for _, th := range threads {
		escape.Fprintf(w, "\nThread %d (%s) state %s, held %dµs:\n", th.TID, th.Name, th.State, th.Held.Microseconds())
		if th.Err != nil {
			escape.Fprintf(w, "  (no stack: %v)\n", th.Err)
			continue
		}
		for i, f := range th.Frames {
			escape.Fprintf(w, "  #%-2d %s\n", i, f)
		}
		if len(th.Frames) > 0 {
			escape.Fprintf(w, "      (%s)\n", th.Stop)
		}
	}
	return nil
}
