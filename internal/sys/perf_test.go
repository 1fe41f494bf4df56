package sys

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/test/privtest"
	"golang.org/x/sys/unix"
)

// fakeRing is a PerfEvent over a Go buffer, with a writer playing the
// kernel, to test the reader's wrap-around without a kernel.
func fakeRing(size int) *PerfEvent {
	return &PerfEvent{fd: -1, meta: &unix.PerfEventMmapPage{}, data: make([]byte, size)}
}

func (e *PerfEvent) fakeWrite(typ uint32, payload []byte) {
	rec := make([]byte, 8, 8+len(payload))
	binary.NativeEndian.PutUint32(rec, typ)
	binary.NativeEndian.PutUint16(rec[6:], uint16(8+len(payload)))
	rec = append(rec, payload...)
	head := e.meta.Data_head
	for i, b := range rec {
		e.data[(head+uint64(i))%uint64(len(e.data))] = b
	}
	e.meta.Data_head = head + uint64(len(rec))
}

func TestPerfRingWrapAround(t *testing.T) {
	e := fakeRing(64)
	var got [][]byte
	collect := func(rec []byte) { got = append(got, slices.Clone(rec[8:])) }

	// 24-byte records in a 64-byte ring: the third straddles the end,
	// and after two reads the header of the next one does too.
	var want [][]byte
	for round := range 4 {
		for i := range 2 {
			p := make([]byte, 16+8*i)
			for j := range p {
				p[j] = byte(round*16 + i*8 + j)
			}
			e.fakeWrite(PerfRecordSample, p)
			want = append(want, p)
		}
		if n := e.Read(collect); n != 2 {
			t.Fatalf("round %d: read %d records, want 2", round, n)
		}
		if e.meta.Data_tail != e.meta.Data_head {
			t.Fatalf("round %d: tail %d, head %d", round, e.meta.Data_tail, e.meta.Data_head)
		}
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("records differ:\n got %v\nwant %v", got, want)
	}

	lost := make([]byte, 16)
	binary.NativeEndian.PutUint64(lost[8:], 7)
	e.fakeWrite(PerfRecordLost, lost)
	e.Read(func([]byte) {})
	if e.Lost() != 7 {
		t.Errorf("Lost() = %d, want 7", e.Lost())
	}

	// A corrupt size skips to the head instead of looping.
	e.fakeWrite(PerfRecordSample, nil)
	binary.NativeEndian.PutUint16(e.data[(e.meta.Data_head-8+6)%64:], 0)
	if n := e.Read(collect); n != 0 || e.meta.Data_tail != e.meta.Data_head {
		t.Errorf("corrupt record: read %d, tail %d head %d", n, e.meta.Data_tail, e.meta.Data_head)
	}
}

// TestPerfRingPeek: Peek hands out the records of one type that ReadTo
// will, and consumes nothing; ReadTo stops at the head it was given,
// leaving what the kernel wrote after it for the next read.
func TestPerfRingPeek(t *testing.T) {
	e := fakeRing(128)
	first := func(rec []byte) byte { return rec[8] }
	e.fakeWrite(PerfRecordSample, make([]byte, 40)) // read before: the rest starts at 48
	e.Read(func([]byte) {})
	e.fakeWrite(PerfRecordSample, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	e.fakeWrite(PerfRecordComm, []byte{2, 0, 0, 0, 0, 0, 0, 0})
	e.fakeWrite(PerfRecordSample, []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	e.fakeWrite(PerfRecordComm, append([]byte{4}, make([]byte, 23)...)) // 104 to 136: wraps around the end
	head := e.Head()
	e.fakeWrite(PerfRecordComm, []byte{5, 0, 0, 0, 0, 0, 0, 0}) // after the line
	var peeked, read []byte
	for range 2 {
		peeked = peeked[:0]
		if n := e.Peek(head, PerfRecordComm, func(rec []byte) { peeked = append(peeked, first(rec)) }); n != 2 {
			t.Fatalf("Peek handed %d records, want 2", n)
		}
	}
	if !slices.Equal(peeked, []byte{2, 4}) || e.meta.Data_tail != 48 {
		t.Errorf("Peek gave %v and moved the tail to %d", peeked, e.meta.Data_tail)
	}
	e.ReadTo(head, func(rec []byte) { read = append(read, first(rec)) })
	if !slices.Equal(read, []byte{1, 2, 3, 4}) {
		t.Errorf("ReadTo gave %v, want [1 2 3 4]", read)
	}
	e.Read(func(rec []byte) { read = append(read, first(rec)) })
	if !slices.Equal(read, []byte{1, 2, 3, 4, 5}) {
		t.Errorf("ReadTo then Read gave %v, want [1 2 3 4 5]", read)
	}
}

// TestPerfEventExited: an event on a live thread has not exited, one on
// a thread that ended has, disabled or not.
func TestPerfEventExited(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	attr := PerfEventAttr{
		Type:   PerfTypeSoftware,
		Config: PerfCountSWCPUClock,
		Sample: 1_000_000,
		Bits:   PerfBitDisabled | PerfBitExcludeKernel | PerfBitExcludeHv,
	}
	e, err := OpenPerfEvent(&attr, cmd.Process.Pid, -1, 1)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOENT) {
		cmd.Process.Kill()
		cmd.Wait()
		privtest.Require(t, "perf events unavailable: "+err.Error())
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	defer e.Close()
	if e.Exited() {
		t.Error("Exited() on a live process")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !e.Exited() {
		t.Error("not Exited() on a process reaped")
	}
}

// spinSink keeps the compiler from removing a spin loop.
var spinSink uint64

func TestPerfEventOwnThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	attr := PerfEventAttr{
		Type:        PerfTypeSoftware,
		Config:      PerfCountSWCPUClock,
		Sample:      1000,
		Sample_type: PerfSampleTID | PerfSampleIP,
		Bits:        PerfBitFreq | PerfBitDisabled | PerfBitExcludeKernel | PerfBitExcludeHv,
	}
	tid := Gettid()
	e, err := OpenPerfEvent(&attr, tid, -1, 4)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOENT) {
		privtest.Require(t, "perf events unavailable: "+err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Enable(); err != nil {
		t.Fatal(err)
	}
	// Spin in user code until the thread has had 100 ms of CPU, however
	// long a loaded machine takes to give it (the deadline only catches a
	// hang). The clock is read every 100,000 rounds, so that the kernel
	// time of reading it, which is not sampled, stays a small part.
	cpu0 := ThreadCPU().Total()
	deadline := time.Now().Add(10 * time.Second)
	x := uint64(1)
	for ThreadCPU().Total()-cpu0 < 100*time.Millisecond && time.Now().Before(deadline) {
		for range 100_000 {
			x = x*6364136223846793005 + 1
		}
	}
	spinSink = x
	if err := e.Disable(); err != nil {
		t.Fatal(err)
	}
	oncpu := ThreadCPU().Total() - cpu0
	samples := 0
	e.Read(func(rec []byte) {
		if binary.NativeEndian.Uint32(rec) == PerfRecordSample {
			samples++
			if got := int(binary.NativeEndian.Uint32(rec[20:])); got != tid {
				t.Errorf("sample of thread %d, want %d", got, tid)
			}
		}
	})
	// cpu-clock ticks on the thread's own CPU time, so the count follows
	// the time the thread got, at any speed of the machine and however
	// much of it other work took (measured: 0.93-0.99 of the expected
	// count on an AMD EPYC VM).
	want := oncpu.Seconds() * 1000
	t.Logf("%d samples in %v of the thread's CPU at 1 kHz: %.2f of the %.0f expected", samples, oncpu, float64(samples)/want, want)
	if float64(samples) < 0.7*want || float64(samples) > 1.3*want {
		t.Errorf("%d samples in %v of the thread's CPU at 1 kHz, want %.0f..%.0f", samples, oncpu, 0.7*want, 1.3*want)
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
}

// TestPerfEventParanoid checks the setting against the file read
// independently. The file is missing only where the kernel has no perf
// events, which CI's kernel has.
func TestPerfEventParanoid(t *testing.T) {
	raw, rawErr := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
	v, err := PerfEventParanoid()
	if errors.Is(rawErr, fs.ErrNotExist) {
		if err == nil {
			t.Errorf("PerfEventParanoid() = %d without the file", v)
		}
		privtest.Require(t, "no /proc/sys/kernel/perf_event_paranoid: the kernel has no perf events")
	}
	if rawErr != nil {
		t.Fatal(rawErr)
	}
	if err != nil {
		t.Fatalf("PerfEventParanoid: %v (the file holds %q)", err, raw)
	}
	want, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("the file holds %q: %v", raw, err)
	}
	t.Logf("perf_event_paranoid = %d", v)
	if v != want {
		t.Errorf("PerfEventParanoid() = %d, the file holds %q", v, raw)
	}
}

func TestParseCPUList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"0-1\n", []int{0, 1}, true},
		{"0", []int{0}, true},
		{"0-3,8,10-11\n", []int{0, 1, 2, 3, 8, 10, 11}, true},
		{"", nil, true},
		{"3-1", nil, false},
		{"a", nil, false},
		{"0-", nil, false},
		{"-1", nil, false},
		{"0-9999999", nil, false},
	} {
		got, err := ParseCPUList(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if cpus, err := OnlineCPUs(); err != nil || len(cpus) == 0 {
		t.Errorf("OnlineCPUs() = %v, %v", cpus, err)
	}
}

// FuzzParseCPUList: any text, no panic, and never more CPUs than a
// kernel can have.
func FuzzParseCPUList(f *testing.F) {
	f.Add("0-3,8,10-11\n")
	f.Add("0-8191")
	f.Fuzz(func(t *testing.T, s string) {
		if cpus, err := ParseCPUList(s); err == nil && len(cpus) > maxCPUs {
			t.Fatalf("%d CPUs from %q", len(cpus), s)
		}
	})
}
