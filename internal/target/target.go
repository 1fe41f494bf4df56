package target

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// Errors a selection can end in.
var (
	ErrNoProcess    = errors.New("no such process")
	ErrAmbiguous    = errors.New("ambiguous target")
	ErrNoContainer  = errors.New("no such container")
	ErrKernelThread = errors.New("kernel thread")
	ErrGone         = proc.ErrGone // one sentinel for a process that is gone, whoever finds it
	ErrLeaderExited = errors.New("main thread exited")
	ErrPrivilege    = errors.New("insufficient privilege")
	ErrUsage        = errors.New("invalid target")
	ErrNothingBusy  = errors.New("nothing is busy")
)

// selError is a selection error: its text is the whole message for the
// user, and it matches its kind (one of the Err values) with errors.Is.
type selError struct {
	kind error
	msg  string
}

func (e *selError) Error() string { return e.msg }
func (e *selError) Unwrap() error { return e.kind }

func fail(kind error, format string, args ...any) error {
	return &selError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Spec is what the user named. At most one of PID, Container and Name is
// set; NsPID only with Container. The zero Spec means "the busiest process".
type Spec struct {
	PID       int
	Container string // name, or a prefix of the id
	NsPID     int    // a PID as seen inside Container
	Name      string // regular expression on the process name or command line
}

// IsZero reports whether nothing was named.
func (s Spec) IsZero() bool { return s == Spec{} }

// Validate checks the combination of fields.
func (s Spec) Validate() error {
	n := 0
	for _, set := range []bool{s.PID != 0, s.Container != "", s.Name != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return fail(ErrUsage, "give one of a PID, --container or --name")
	case s.NsPID != 0 && s.Container == "":
		return fail(ErrUsage, "--ns-pid needs --container")
	case s.PID < 0 || s.NsPID < 0:
		return fail(ErrUsage, "a PID is a positive number")
	}
	if s.Name != "" {
		if _, err := regexp.Compile(s.Name); err != nil {
			return fail(ErrUsage, "--name %q is not a regular expression: %v", s.Name, err)
		}
	}
	return nil
}

// Target is the selected process.
type Target struct {
	PID       int
	NsPID     int
	Name      string // comm
	Cmdline   string
	Container *container.Info
	// Picked says why cpuwhy chose this process when the user named none
	// (or named a container of several); nil when the user named it.
	Picked *Pick
	// Named is the thread the user named when it was not the process
	// itself (a TID given as a PID); nil when the process was named.
	Named *Thread
	// Kernel says the target is a kernel thread (ksoftirqd, kworker...):
	// only selected when Selector.KernelThreads allows it.
	Kernel bool
}

// Pick is why a process nobody named was examined: of the processes
// measured, it used the most CPU over Window. A report says so, since a
// user who typed no PID cannot otherwise tell whether cpuwhy looked where
// they meant.
type Pick struct {
	Among  string        // "the host", or "container vpn (docker 0247046d3c16)"
	Window time.Duration // how long CPU was measured
	CPU    float64       // its CPU over Window, percent of one core
}

// String is the reason in words with the selection's figure, for reports
// that show no CPU figure of their own (the syscall profile).
func (p *Pick) String() string {
	return fmt.Sprintf("picked as the busiest process of %s: %.1f%% of a core over %s (name a process to choose another)", p.Among, p.CPU, roundWindow(p.Window))
}

// Reason is the reason without the figure, for reports that measure the
// process again over their own window and print that figure: one report
// must not give two for the same thing.
func (p *Pick) Reason() string {
	return fmt.Sprintf("picked as the busiest process of %s over %s (name a process to choose another)", p.Among, roundWindow(p.Window))
}

// pickJSON is Pick in the JSON reports: the window in seconds, as every
// other duration there.
type pickJSON struct {
	Among  string  `json:"among"`
	Window float64 `json:"window_s"`
	CPU    float64 `json:"cpu"`
}

func (p *Pick) MarshalJSON() ([]byte, error) {
	return json.Marshal(pickJSON{p.Among, p.Window.Seconds(), math.Round(p.CPU*10) / 10})
}

func (p *Pick) UnmarshalJSON(b []byte) error {
	var v pickJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Pick{Among: v.Among, Window: time.Duration(v.Window * float64(time.Second)), CPU: v.CPU}
	return nil
}

// IdleError is the selection's answer when nothing was named and even the
// busiest process uses less than Selector.MinCPU: there is nothing burning
// CPU to examine. It matches ErrNothingBusy.
//
// Interrupts, when not 0, is the CPU the kernel spent in interrupts and
// softirqs over Window, in percent of one core, which no process's
// figure holds: when it is more than the busiest process's, the host's
// CPU goes to the kernel, and the answer says so rather than pick a
// process that is not why.
type IdleError struct {
	PID        int
	Name       string
	CPU        float64 // percent of one core over Window
	Window     time.Duration
	MinCPU     float64
	Interrupts float64
}

func (e *IdleError) Error() string {
	if e.Interrupts > e.CPU {
		return fmt.Sprintf("the kernel is the busiest: interrupts and softirqs took %.1f%% of a core over %s, more than any process (the busiest, %s (PID %d), used %.1f%%); /proc/softirqs says which, and cpuwhy PID shows what they cost a process you name",
			e.Interrupts, roundWindow(e.Window), e.Name, e.PID, e.CPU)
	}
	return fmt.Sprintf("nothing is busy: the busiest process, %s (PID %d), used %.1f%% of a core over %s (below %.0f%%); name a process (PID, --name, --container) to examine it anyway",
		e.Name, e.PID, e.CPU, roundWindow(e.Window), e.MinCPU)
}

func (e *IdleError) Unwrap() error { return ErrNothingBusy }

// roundWindow prints a measuring window as a person would say it: "0.5 s".
func roundWindow(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// Thread is one thread of a process, as the user named it.
type Thread struct {
	TID   int
	NsTID int // as seen inside its container; TID on the host
	Name  string
}

// Note says what the selection made of what the user named, when that was
// not a process; "" when it was. Commands print it before their output:
// the report is about the whole process, not the thread named.
func (t Target) Note() string {
	if t.Named == nil {
		return ""
	}
	tid, pid := t.Named.TID, t.PID
	if t.Container != nil && t.Named.NsTID != t.Named.TID {
		return fmt.Sprintf("TID %d (%s) is a thread of PID %d (%s) in container %s, not a process: examining PID %d, all its threads",
			t.Named.NsTID, t.Named.Name, t.NsPID, t.Name, containerLabel(t.Container), t.NsPID)
	}
	return fmt.Sprintf("TID %d (%s) is a thread of process %d (%s), not a process: examining process %d, all its threads",
		tid, t.Named.Name, pid, t.Name, pid)
}

func (t Target) String() string {
	s := fmt.Sprintf("%d (%s)", t.PID, t.Name)
	if t.Container != nil {
		name := t.Container.Name
		if name == "" {
			name = shortID(t.Container.ID)
		}
		s += fmt.Sprintf(" in %s container %s as PID %d", t.Container.Runtime, name, t.NsPID)
	}
	return s
}

// ContainerLabel is how a profile labels the target's container,
// "docker:vpn" (the id when it has no name); "" on the host.
func (t Target) ContainerLabel() string {
	if t.Container == nil {
		return ""
	}
	return string(t.Container.Runtime) + ":" + cmp.Or(t.Container.Name, t.Container.ID)
}

// Containers names the container of a host PID; *container.Resolver is the
// real one.
type Containers interface {
	Lookup(pid int) (*container.Info, error)
}

// Selector selects targets.
type Selector struct {
	Proc       proc.FS
	Containers Containers
	// Window is how long CPU is measured to find the busiest process;
	// default one second.
	Window time.Duration
	// Self is cpuwhy's own PID, never selected; default os.Getpid().
	Self int
	// MinCPU is, when nothing is named, the least CPU (percent of one
	// core over Window) the busiest process must use to be selected;
	// below it Select returns an *IdleError instead of a process that is
	// not burning CPU. 0 selects the busiest whatever it uses.
	MinCPU float64
	// KernelThreads lets kernel threads be selected (Target.Kernel), by
	// PID and as the busiest: for the diagnosis, which explains them;
	// the other commands examine user space only.
	KernelThreads bool
	// Notify, when set, is told what Target.Note says whenever a
	// selection resolves a thread to its process, so that every command
	// says so the same way.
	Notify func(note string)
}

func (s *Selector) window() time.Duration {
	if s.Window <= 0 {
		return time.Second
	}
	return s.Window
}

func (s *Selector) self() int {
	if s.Self == 0 {
		return os.Getpid()
	}
	return s.Self
}

// Select resolves spec to one process. A thread's ID, given as a PID or
// as --ns-pid, resolves to the process the thread belongs to (Target.Named
// says which thread; Notify is told).
func (s *Selector) Select(ctx context.Context, spec Spec) (Target, error) {
	t, err := s.selectOne(ctx, spec)
	if err == nil && t.Named != nil && s.Notify != nil {
		s.Notify(t.Note())
	}
	return t, err
}

func (s *Selector) selectOne(ctx context.Context, spec Spec) (Target, error) {
	if err := spec.Validate(); err != nil {
		return Target{}, err
	}
	switch {
	case spec.PID != 0:
		return s.byPID(spec.PID)
	case spec.Container != "":
		return s.byContainer(ctx, spec.Container, spec.NsPID)
	case spec.Name != "":
		return s.byName(spec.Name)
	}
	host0, err0 := s.Proc.HostStat()
	best, err := s.busiest(ctx, nil)
	if err != nil {
		return Target{}, err
	}
	var interrupts float64 // percent of a core over the window
	if host1, err1 := s.Proc.HostStat(); err0 == nil && err1 == nil {
		d := host1.All.Sub(host0.All)
		if total := float64(d.Total()); total > 0 {
			interrupts = 100 * float64(len(host1.CPUs)) * float64(d.IRQ+d.SoftIRQ) / total
		}
	}
	if idle := s.idle(best); idle != nil || s.KernelThreads && interrupts > best.CPU.Total && interrupts >= s.MinCPU {
		if idle == nil {
			idle = &IdleError{PID: best.PID, Name: best.Comm, CPU: best.CPU.Total, Window: s.window(), MinCPU: s.MinCPU}
		}
		idle.Interrupts = interrupts
		return Target{}, idle
	}
	t, err := s.byPID(best.PID)
	if err != nil {
		return Target{}, err
	}
	t.Picked = &Pick{Among: "the host", Window: s.window(), CPU: best.CPU.Total}
	return t, nil
}

// idle is the error for a busiest process below MinCPU, nil otherwise.
func (s *Selector) idle(best proc.ProcessUsage) *IdleError {
	if best.CPU.Total >= s.MinCPU {
		return nil
	}
	return &IdleError{PID: best.PID, Name: best.Comm, CPU: best.CPU.Total, Window: s.window(), MinCPU: s.MinCPU}
}

// Match resolves spec to every process it names, for views that show a
// set (cpuwhy top): a container's processes, every process a name matches.
// A zero Spec matches nothing here (callers show all processes instead).
func (s *Selector) Match(spec Spec) ([]Target, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	switch {
	case spec.PID != 0 || spec.NsPID != 0:
		t, err := s.Select(context.Background(), spec)
		if err != nil {
			return nil, err
		}
		return []Target{t}, nil
	case spec.Container != "":
		_, members, err := s.findContainer(spec.Container)
		return members, err
	case spec.Name != "":
		return s.matchName(spec.Name)
	}
	return nil, nil
}

func (s *Selector) byPID(pid int) (Target, error) {
	sc := proc.NewScanner(s.Proc)
	p, err := sc.ReadProcess(pid, false)
	if errors.Is(err, proc.ErrGone) {
		if err := s.hiddenError(pid); err != nil {
			return Target{}, err
		}
		return Target{}, fail(ErrNoProcess, "no process has PID %d (list them with `cpuwhy top`)", pid)
	}
	if err != nil {
		return Target{}, fmt.Errorf("reading PID %d: %w", pid, err)
	}
	// /proc answers for any thread's TID, though it lists only processes:
	// read as a process, a thread would be examined as one (its stat, the
	// whole process's threads and maps under its number), and a pidfd of
	// it cannot be opened.
	if st, err := s.Proc.Status(pid); err == nil && st.TGID != pid && st.TGID > 0 {
		return s.ofThread(Thread{TID: pid, NsTID: st.NsPID, Name: p.Comm}, st.TGID)
	}
	if p.KernelThread() && s.KernelThreads {
		t := s.describe(p.Stat)
		t.Kernel = true
		return t, nil
	}
	if p.KernelThread() {
		return Target{}, fail(ErrKernelThread, "PID %d (%s) is a kernel thread, with no user space to examine; pick a user process", pid, p.Comm)
	}
	if p.Stat.Exited() {
		// The main thread may have exited while others run on: only a
		// process none of whose threads runs is a zombie.
		all, err := sc.ReadProcess(pid, true)
		if err != nil || all.Exited() {
			return Target{}, fail(ErrGone, "PID %d (%s) has exited: a zombie until its parent, PID %d, reaps it; nothing runs there", pid, p.Comm, p.PPID)
		}
		// Its memory map, root and fds are out of reach through the
		// PID (the kernel finds them through the main thread): cpuwhy
		// would name no frame and describe no fd. Say so rather than
		// print a report of raw addresses.
		return Target{}, fail(ErrLeaderExited, "PID %d (%s) runs on in other threads after its main thread exited (pthread_exit in main); cpuwhy cannot examine such a process yet: its memory map and fds are out of reach through PID %d", pid, p.Comm, pid)
	}
	t := s.describe(p.Stat)
	return t, nil
}

// ofThread selects the process a named thread belongs to.
func (s *Selector) ofThread(th Thread, pid int) (Target, error) {
	t, err := s.byPID(pid)
	if err != nil {
		var se *selError
		if errors.As(err, &se) {
			return Target{}, fail(se.kind, "TID %d (%s) is a thread of process %d, not a process: %s", th.TID, th.Name, pid, se.msg)
		}
		return Target{}, fmt.Errorf("TID %d is a thread of process %d: %w", th.TID, pid, err)
	}
	if th.NsTID == th.TID || t.Container == nil {
		th.NsTID = th.TID
	}
	t.Named = &th
	return t, nil
}

func (s *Selector) describe(st proc.Stat) Target {
	id := s.Proc.Identity(st.PID)
	t := Target{PID: st.PID, NsPID: id.NsPID, Name: st.Comm, Cmdline: id.Cmdline}
	if s.Containers != nil {
		t.Container, _ = s.Containers.Lookup(st.PID)
	}
	return t
}

func (s *Selector) procRoot() string {
	if s.Proc.Root == "" {
		return proc.DefaultRoot
	}
	return s.Proc.Root
}

// userProcesses lists every user-space process but cpuwhy.
func (s *Selector) userProcesses() ([]proc.Process, error) {
	snap, err := proc.NewScanner(s.Proc).Scan(proc.ScanOptions{})
	if err != nil {
		return nil, err
	}
	self := s.self()
	return slices.DeleteFunc(snap.Processes, func(p proc.Process) bool { return p.PID == self }), nil
}

func (s *Selector) byName(pattern string) (Target, error) {
	matches, err := s.matchName(pattern)
	if err != nil {
		return Target{}, err
	}
	if len(matches) > 1 {
		return Target{}, fail(ErrAmbiguous, "--name %q matches %d processes: %s; give one PID instead", pattern, len(matches), listTargets(matches))
	}
	return matches[0], nil
}

// matchName matches the process name (comm) first and the full command line
// only when no name matches, as pgrep and pgrep -f would: a command line
// match alone would also catch the shell or sudo that started cpuwhy with
// the pattern among its arguments.
func (s *Selector) matchName(pattern string) ([]Target, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fail(ErrUsage, "--name %q: %v", pattern, err)
	}
	procs, err := s.userProcesses()
	if err != nil {
		return nil, err
	}
	var byComm []Target
	for _, p := range procs {
		if re.MatchString(p.Comm) {
			byComm = append(byComm, s.describe(p.Stat))
		}
	}
	if len(byComm) > 0 {
		return byComm, nil
	}
	ancestors := s.ancestors(procs)
	var byCmdline []Target
	for _, p := range procs {
		if ancestors[p.PID] {
			continue
		}
		t := s.describe(p.Stat)
		if re.MatchString(t.Cmdline) {
			byCmdline = append(byCmdline, t)
		}
	}
	if len(byCmdline) == 0 {
		return nil, fail(ErrNoProcess, "no process name or command line matches %q (list them with `cpuwhy top`)", pattern)
	}
	return byCmdline, nil
}

func (s *Selector) ancestors(procs []proc.Process) map[int]bool {
	parent := make(map[int]int, len(procs))
	for _, p := range procs {
		parent[p.PID] = p.PPID
	}
	out := map[int]bool{}
	if st, err := proc.NewScanner(s.Proc).ReadProcess(s.self(), false); err == nil {
		for pid := st.PPID; pid > 1 && !out[pid]; pid = parent[pid] {
			out[pid] = true
		}
	}
	return out
}

func (s *Selector) byContainer(ctx context.Context, query string, nsPID int) (Target, error) {
	c, members, err := s.findContainer(query)
	if err != nil {
		return Target{}, err
	}
	label := containerLabel(c)
	if nsPID != 0 {
		for _, m := range members {
			if m.NsPID == nsPID {
				return m, nil
			}
		}
		if t, ok := s.threadInside(members, nsPID); ok {
			return t, nil
		}
		return Target{}, fail(ErrNoProcess, "container %s has no PID %d inside it (it has %s)", label, nsPID, listNsPIDs(members))
	}
	if len(members) == 1 {
		return members[0], nil
	}
	pids := make([]int, len(members))
	for i, m := range members {
		pids[i] = m.PID
	}
	best, err := s.busiest(ctx, pids)
	if err != nil {
		return Target{}, fmt.Errorf("container %s: %w", label, err)
	}
	for _, m := range members {
		if m.PID == best.PID {
			m.Picked = &Pick{Among: "container " + label, Window: s.window(), CPU: best.CPU.Total}
			return m, nil
		}
	}
	return Target{}, fail(ErrGone, "the processes of container %s exited while being measured", label)
}

// threadInside finds the process of members that has a thread whose ID
// inside the container is nsTID.
func (s *Selector) threadInside(members []Target, nsTID int) (Target, bool) {
	for _, m := range members {
		tids, err := s.tasks(m.PID)
		if err != nil {
			continue
		}
		for _, tid := range tids {
			st, err := s.Proc.TaskStatus(m.PID, tid)
			if err != nil || st.NsPID != nsTID {
				continue
			}
			name := ""
			if p, err := proc.NewScanner(s.Proc).ReadProcess(tid, false); err == nil {
				name = p.Comm
			}
			m.Named = &Thread{TID: tid, NsTID: nsTID, Name: name}
			return m, true
		}
	}
	return Target{}, false
}

// tasks lists the TIDs of process pid.
func (s *Selector) tasks(pid int) ([]int, error) {
	entries, err := os.ReadDir(s.Proc.PIDPath(pid, "task"))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// findContainer finds the one container whose name is query or whose id
// starts with it, and its processes.
func (s *Selector) findContainer(query string) (*container.Info, []Target, error) {
	if s.Containers == nil {
		return nil, nil, fail(ErrNoContainer, "container lookup is not available")
	}
	procs, err := s.userProcesses()
	if err != nil {
		return nil, nil, err
	}
	byID := map[string]*container.Info{}
	members := map[string][]Target{}
	for _, p := range procs {
		c, err := s.Containers.Lookup(p.PID)
		if err != nil || c == nil {
			continue
		}
		byID[c.ID] = c
		members[c.ID] = append(members[c.ID], s.describe(p.Stat))
	}
	var exact, prefix []*container.Info
	for id, c := range byID {
		switch {
		case c.Name == query || id == query:
			exact = append(exact, c)
		case strings.HasPrefix(id, strings.ToLower(query)):
			prefix = append(prefix, c)
		}
	}
	found := exact
	if len(found) == 0 {
		found = prefix
	}
	switch {
	case len(found) == 0:
		return nil, nil, fail(ErrNoContainer, "no running container is named %q or has an id starting with it (running: %s)", query, listContainers(byID))
	case len(found) > 1:
		return nil, nil, fail(ErrAmbiguous, "%q matches %d containers: %s; give more of the id", query, len(found), listContainers(toMap(found)))
	}
	c := found[0]
	return c, members[c.ID], nil
}

// busiest measures CPU over the window and returns the process that used
// the most, with its usage; among pids only, when given.
func (s *Selector) busiest(ctx context.Context, pids []int) (proc.ProcessUsage, error) {
	sc := proc.NewScanner(s.Proc)
	before, err := sc.Scan(proc.ScanOptions{PIDs: pids, KernelThreads: s.KernelThreads})
	if err != nil {
		return proc.ProcessUsage{}, err
	}
	select {
	case <-ctx.Done():
		return proc.ProcessUsage{}, ctx.Err()
	case <-time.After(s.window()):
	}
	after, err := sc.Scan(proc.ScanOptions{PIDs: pids, KernelThreads: s.KernelThreads})
	if err != nil {
		return proc.ProcessUsage{}, err
	}
	self := s.self()
	usage := slices.DeleteFunc(proc.Compare(before, after), func(u proc.ProcessUsage) bool { return u.PID == self })
	if len(usage) == 0 {
		return proc.ProcessUsage{}, fail(ErrGone, "no user process left to examine")
	}
	return slices.MaxFunc(usage, func(a, b proc.ProcessUsage) int {
		if c := cmp.Compare(a.CPU.Total, b.CPU.Total); c != 0 {
			return c
		}
		return cmp.Compare(b.PID, a.PID) // the older process on a tie
	}), nil
}

func listTargets(ts []Target) string {
	const max = 8
	var parts []string
	for i, t := range ts {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(ts)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%d (%s)", t.PID, t.Name))
	}
	return strings.Join(parts, ", ")
}

func listNsPIDs(ts []Target) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%d (%s)", t.NsPID, t.Name))
	}
	return strings.Join(parts, ", ")
}

func listContainers(m map[string]*container.Info) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, c := range m {
		parts = append(parts, containerLabel(c))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func toMap(cs []*container.Info) map[string]*container.Info {
	m := map[string]*container.Info{}
	for _, c := range cs {
		m[c.ID] = c
	}
	return m
}

func containerLabel(c *container.Info) string {
	if c.Name != "" {
		return fmt.Sprintf("%s (%s %s)", c.Name, c.Runtime, shortID(c.ID))
	}
	return fmt.Sprintf("%s %s", c.Runtime, shortID(c.ID))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Exited is the error for a target that exited while cpuwhy observed it.
func Exited(t Target) error {
	return fail(ErrGone, "process %s exited while cpuwhy was observing it", t)
}
