package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/escape"
	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/target"

	// Every command that shows a stack names a runtime's frames: the
	// runtimes register themselves when linked in.
	_ "github.com/cpuwhy/cpuwhy/internal/stack/runtimes"
)

// Streams are a command's standard I/O, swapped for buffers in tests.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// globalOptions are flags every command shares.
type globalOptions struct {
	procRoot       string
	dockerDataRoot string
	dockerSocket   string
	// stderr is where notes about the target go: a note is for the
	// person reading, never part of a report a script parses.
	stderr io.Writer
}

func (g *globalOptions) resolver() *container.Resolver {
	return container.NewResolver(container.Options{
		Proc:           g.procFS(),
		DockerDataRoot: g.dockerDataRoot,
		DockerSocket:   g.dockerSocket,
	})
}

func (g *globalOptions) selector(r *container.Resolver) *target.Selector {
	sel := &target.Selector{Proc: g.procFS()}
	if r != nil { // a nil *Resolver in the interface would not compare nil
		sel.Containers = r
	}
	if g.stderr != nil {
		sel.Notify = func(note string) { escape.Fprintf(g.stderr, "cpuwhy: note: %s\n", note) }
	}
	return sel
}

// usageError marks an error in what the user typed (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// NewRootCmd builds the cpuwhy command tree.
func NewRootCmd(s Streams) *cobra.Command {
	g := &globalOptions{stderr: s.Err}
	root := &cobra.Command{
		Use:   "cpuwhy",
		Short: "Tell why a process or a container is burning CPU",
		Long: `cpuwhy answers, from the host, why a process or a container burns CPU:
which process, container and thread, and what it is doing.

With no command, it watches the target (the busiest process when none is
named) for a few seconds with everything at once: thread CPU, a syscall
profile with errno and fds, and on-CPU stack samples; then it says what
the process is doing in plain words: a verdict such as busy_poll,
error_loop or compute_loop, the numbers behind it, and what usually
fixes it. The commands below are its instruments, one at a time.

Run it as root (or with CAP_SYS_PTRACE, CAP_PERFMON and CAP_BPF).`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	pf := root.PersistentFlags()
	pf.StringVar(&g.procRoot, "proc", proc.DefaultRoot, "where the host's proc filesystem is mounted")
	pf.StringVar(&g.dockerDataRoot, "docker-data-root", "", "Docker's data root, when not the running dockerd's (default: detected, else /var/lib/docker)")
	pf.StringVar(&g.dockerSocket, "docker-socket", "", "path of Docker's API socket (default: detected, else /var/run/docker.sock)")
	_ = root.PersistentFlags().MarkHidden("proc")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError(err) })
	root.AddCommand(newTopCmd(g, s), newSyscallsCmd(g, s), newRecordCmd(g, s), newDumpCmd(g, s), newWatchCmd(g, s), newAgentCmd(g, s))
	bindDiagnose(root, g, s)
	return root
}

// Main runs cpuwhy with args and returns its exit status.
func Main(args []string, s Streams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if errors.Is(err, context.Canceled) {
		return 130 // interrupted, as a shell reports SIGINT
	}
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, target.ErrUsage) || isCobraUsage(err) {
		escape.Fprintf(s.Err, "cpuwhy: %v (see cpuwhy --help)\n", err)
		return 2
	}
	escape.Fprintf(s.Err, "cpuwhy: %v\n", err)
	return 1
}

// isCobraUsage recognises cobra's own argument errors, which it does not
// type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires ", "unknown flag", "unknown shorthand"} {
		if len(msg) >= len(p) && msg[:len(p)] == p {
			return true
		}
	}
	return false
}

func (g *globalOptions) procFS() proc.FS { return proc.FS{Root: g.procRoot} }
