package syscalls

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/golden"
	"github.com/cpuwhy/cpuwhy/internal/sysno"
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
	// Threads come by time in syscalls, not by calls: the thread sleeping
	// in epoll_wait (about 2.9 s) before the spinner (about 2.7 s).
	if r.Threads[0].TID != 4680 || r.Threads[1].TID != 4677 {
		t.Errorf("threads in order %d, %d; want 4680, 4677", r.Threads[0].TID, r.Threads[1].TID)
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
