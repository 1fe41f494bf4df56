package syscalls

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/sysno"
	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/test/golden"
)

type fakeFDs map[int]string

func (f fakeFDs) DescribeAll(_ int, fds []int) map[int]string {
	out := map[int]string{}
	for _, fd := range fds {
		if d, ok := f[fd]; ok {
			out[fd] = d
		}
	}
	return out
}

func timed(count uint64, every uint64, ns uint64) *Stat {
	s := &Stat{Count: count}
	for i := uint64(0); i < count/every; i++ {
		s.Observe(ns)
	}
	return s
}

// seedProfile is the field report's server: NatThreadMain spinning on
// recvfrom with EAGAIN, beside a quiet main thread.
func seedProfile() *Profile {
	const arch = "amd64"
	recvfrom, futex, epoll, sendto := sysno.Number(arch, "recvfrom"), sysno.Number(arch, "futex"), sysno.Number(arch, "epoll_wait"), sysno.Number(arch, "sendto")
	return &Profile{
		PID:       5072,
		Mechanism: EBPF,
		Duration:  3 * time.Second,
		Threads:   map[int]string{4677: "NatThreadMain", 5072: "vpnserver", 4680: "vpnserver"},
		Stats: map[Key]*Stat{
			{TID: 4677, Nr: recvfrom, Errno: 11, FD: 3}:  timed(3_000_000, 16, 900),
			{TID: 4677, Nr: recvfrom, Errno: 0, FD: 3}:   timed(160, 16, 2000),
			{TID: 4680, Nr: epoll, Errno: 0, FD: 7}:      timed(320, 16, 9_000_000),
			{TID: 4680, Nr: epoll, Errno: 4, FD: 7}:      timed(16, 16, 1_000_000),
			{TID: 4680, Nr: sendto, Errno: 111, FD: 9}:   timed(48, 16, 5000),
			{TID: 5072, Nr: futex, Errno: 0, FD: NoFD}:   timed(32, 16, 40_000_000),
			{TID: 5072, Nr: futex, Errno: 110, FD: NoFD}: {Count: 3},
		},
		Notes: []string{"durations are sampled"},
	}
}

func TestSummarize(t *testing.T) {
	r := Summarize(seedProfile(), "amd64", fakeFDs{3: "udp 0.0.0.0:1701", 7: "epoll", 9: "udp 127.0.0.1:40000 -> 127.0.0.1:500"})
	if r.Calls != 3_000_000+160+320+16+48+32+3 {
		t.Errorf("calls = %d", r.Calls)
	}
	// Threads come by time in calls that do not wait: the spinner (2.7 s
	// of recvfrom) before the thread blocked in epoll_wait for 2.9 s (and
	// sending a little), before the one sleeping on a futex.
	if got := []int{r.Threads[0].TID, r.Threads[1].TID, r.Threads[2].TID}; !slices.Equal(got, []int{4677, 4680, 5072}) {
		t.Errorf("threads in order %v; want 4677, 4680, 5072", got)
	}
	var nat *Thread
	for i := range r.Threads {
		if r.Threads[i].Name == "NatThreadMain" {
			nat = &r.Threads[i]
		}
	}
	if nat == nil {
		t.Fatal("no NatThreadMain")
	}
	rf := nat.Syscalls[0]
	if rf.Name != "recvfrom" || rf.Count != 3_000_160 || rf.Errors["EAGAIN"] != 3_000_000 || rf.OK != 160 {
		t.Errorf("recvfrom = %+v", rf)
	}
	if len(rf.FDs) != 1 || rf.FDs[0].FD != 3 || rf.FDs[0].Desc != "udp 0.0.0.0:1701" {
		t.Errorf("recvfrom fds = %+v", rf.FDs)
	}
	if rf.Rate < 1_000_000 || rf.Rate > 1_000_100 {
		t.Errorf("rate = %v", rf.Rate)
	}
	// 900 ns lands in bucket 9 ([512, 1024)): p50 is its middle, 768.
	if rf.P50Ns != 768 || rf.Share != 100 {
		t.Errorf("p50 = %d, share = %v", rf.P50Ns, rf.Share)
	}
}

// TestManyFDs covers a loop over more fds than the report lists: it says
// how many there were, in JSON and in text.
func TestManyFDs(t *testing.T) {
	recvfrom := sysno.Number("amd64", "recvfrom")
	p := &Profile{PID: 1, Duration: time.Second, Threads: map[int]string{1: "nat"}, Stats: map[Key]*Stat{}}
	for fd := 10; fd < 10+MaxFDs+3; fd++ {
		p.Stats[Key{TID: 1, Nr: recvfrom, Errno: 11, FD: fd}] = &Stat{Count: uint64(100 + fd)}
	}
	r := Summarize(p, "amd64", nil)
	s := r.Threads[0].Syscalls[0]
	if len(s.FDs) != MaxFDs || s.FDCount != MaxFDs+3 || s.FDs[0].FD != 10+MaxFDs+2 {
		t.Errorf("fds %+v, fd count %d; want the %d busiest of %d", s.FDs, s.FDCount, MaxFDs, MaxFDs+3)
	}
	if text := results(s); !strings.HasSuffix(text, "; 3 more fds") {
		t.Errorf("results %q do not say how many fds are not listed", text)
	}
}

func TestRenderGolden(t *testing.T) {
	r := Summarize(seedProfile(), "amd64", fakeFDs{3: "udp 0.0.0.0:1701", 7: "epoll", 9: "udp 127.0.0.1:40000 -> 127.0.0.1:500"})
	r.Name, r.TimeEvery = "vpnserver", 16
	for _, tt := range []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"seed.txt", func(b *bytes.Buffer) error { return WriteText(b, r, TextOptions{}) }},
		{"seed.json", func(b *bytes.Buffer) error { return WriteJSON(b, r) }},
	} {
		var b bytes.Buffer
		if err := tt.write(&b); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, filepath.Join("testdata", tt.golden), b.Bytes())
	}
}

func TestQuantileAndBucket(t *testing.T) {
	tests := []struct {
		ns   uint64
		want int
	}{{0, 0}, {1, 0}, {2, 1}, {1023, 9}, {1024, 10}, {1 << 45, HistBuckets - 1}}
	for _, tt := range tests {
		if got := Bucket(tt.ns); got != tt.want {
			t.Errorf("Bucket(%d) = %d, want %d", tt.ns, got, tt.want)
		}
	}
	var h [HistBuckets]uint64
	h[3], h[10] = 98, 2 // 98 calls of ~8-16ns, 2 of ~1-2µs
	if p50 := quantile(&h, 100, 0.5); p50 != 12 {
		t.Errorf("p50 = %d, want 12", p50)
	}
	if p99 := quantile(&h, 100, 0.99); p99 != 1536 {
		t.Errorf("p99 = %d, want 1536", p99)
	}
}

func TestErrnoName(t *testing.T) {
	for errno, want := range map[int]string{11: "EAGAIN", 111: "ECONNREFUSED", 4: "EINTR", 4000: "errno 4000"} {
		if got := ErrnoName(errno); got != want {
			t.Errorf("ErrnoName(%d) = %q, want %q", errno, got, want)
		}
	}
}

// TestHeaderCounts: the header counts the timed calls instead of quoting
// the sampling ratio, so tiny and empty windows read true: no "1 call in
// 16 timed: 0 calls", no "1 calls".
func TestHeaderCounts(t *testing.T) {
	futex := sysno.Number("amd64", "futex")
	tests := []struct {
		name      string
		stat      *Stat // of one thread, nil for no calls
		timeEvery int
		want      string
	}{
		{"no calls", nil, 16, "ebpf: no calls\n"},
		{"one call, untimed", &Stat{Count: 1}, 16, "ebpf: 1 call, 1.0/s, none of them timed\n"},
		{"timing off", &Stat{Count: 40}, 0, "ebpf: 40 calls, 40/s, none timed (--time-every 0)\n"},
		{"every call timed", timed(40, 1, 100), 1, "ebpf: 40 calls, 40/s, every one timed\n"},
		{"some timed", timed(48, 16, 100), 16, "ebpf: 48 calls, 48/s, 3 of them timed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Profile{PID: 1, Mechanism: EBPF, Duration: time.Second, Threads: map[int]string{1: "init"}, Stats: map[Key]*Stat{}}
			if tt.stat != nil {
				p.Stats[Key{TID: 1, Nr: futex, FD: NoFD}] = tt.stat
			}
			r := Summarize(p, "amd64", nil)
			r.Name, r.TimeEvery = "init", tt.timeEvery
			r.Picked = &target.Pick{Among: "the host", Window: time.Second, CPU: 0.4}
			var b bytes.Buffer
			if err := WriteText(&b, r, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(b.String(), "\n")
			if head := "cpuwhy syscalls: PID 1 (init), 1.0s, " + tt.want; lines[0] != head {
				t.Errorf("header %q, want %q", lines[0], head)
			}
			if want := "picked as the busiest process of the host: 0.4% of a core over 1 s (name a process to choose another)\n"; lines[1] != want {
				t.Errorf("second line %q, want %q", lines[1], want)
			}
			if strings.Contains(b.String(), " 1 calls") {
				t.Errorf("report says \"1 calls\":\n%s", b.String())
			}
		})
	}
}

// sampledSeed is seedProfile counted in slices, a twelfth of its 3 s
// window: the counts are what the slices held, and Counting says how to
// scale them.
func sampledSeed() *Profile {
	p := seedProfile()
	for k, s := range p.Stats {
		v := *s
		v.Count = max(s.Count/12, s.Timed)
		v.Bytes = s.Bytes / 12
		p.Stats[k] = &v
	}
	p.Dropped = 10
	p.Counting = &Counting{Sampled: true, ProbeRate: 1.2e6, ProbeRateCPU: 3.1e6, Probe: 0.05, Slices: 14, Counted: 0.25, Window: 3, Scale: 12}
	return p
}

// TestSummarizeSampled: counts made in slices are scaled to the window,
// counts and rates alike, the timed calls and their durations left as
// measured; the text says how they were sampled, and the JSON has it.
func TestSummarizeSampled(t *testing.T) {
	r := Summarize(sampledSeed(), "amd64", fakeFDs{3: "udp 0.0.0.0:1701", 7: "epoll", 9: "udp 127.0.0.1:40000 -> 127.0.0.1:500"})
	rf := r.Threads[0].Syscalls[0]
	if rf.Name != "recvfrom" || rf.Count != 3_000_000+156 || rf.Errors["EAGAIN"] != 3_000_000 || rf.OK != 156 || rf.FDs[0].Count != rf.Count {
		t.Errorf("recvfrom = %+v, want its counts scaled by 12", rf)
	}
	if rf.Rate < 1_000_000 || rf.Rate > 1_000_100 {
		t.Errorf("rate = %v, want the scaled count over the window", rf.Rate)
	}
	if rf.Timed != 3_000_000/16+160/16 || rf.MeanNs != 900 || rf.P50Ns != 768 {
		t.Errorf("timed %d, mean %d, p50 %d: want them as measured", rf.Timed, rf.MeanNs, rf.P50Ns)
	}
	if r.Dropped != 120 || r.Counting == nil || !r.Counting.Sampled {
		t.Errorf("dropped %d (10 in the slices), counting %+v", r.Dropped, r.Counting)
	}
	r.Name, r.TimeEvery = "vpnserver", 16
	for _, tt := range []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"seed-sampled.txt", func(b *bytes.Buffer) error { return WriteText(b, r, TextOptions{}) }},
		{"seed-sampled.json", func(b *bytes.Buffer) error { return WriteJSON(b, r) }},
	} {
		var b bytes.Buffer
		if err := tt.write(&b); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, filepath.Join("testdata", tt.golden), b.Bytes())
	}
	if Summarize(seedProfile(), "amd64", nil).Counting.String() != "" {
		t.Error("an exact profile says it was sampled")
	}
}
