package proc

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func hostFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "host", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseHostStat(t *testing.T) {
	tests := []struct {
		file    string
		cpus    int
		all     CPUTimes
		running int
		wantErr error
	}{
		// This VM's /proc/stat (Linux 6.18, 2 CPUs).
		{file: "stat-2cpu.txt", cpus: 2, all: CPUTimes{CPU: -1, User: 525045, Nice: 955, System: 552780, Idle: 2435832, IOWait: 4238, SoftIRQ: 12402, Steal: 13764}, running: 3},
		// A VPS whose hypervisor takes a sixth of each CPU.
		{file: "stat-steal-4cpu.txt", cpus: 4, all: CPUTimes{CPU: -1, User: 40000, Nice: 100, System: 20000, Idle: 300000, IOWait: 500, SoftIRQ: 2000, Steal: 60000}, running: 7},
		// Kernels before 2.6 wrote four modes: the others count zero.
		{file: "stat-old-kernel.txt", cpus: 1, all: CPUTimes{CPU: -1, User: 100, System: 50, Idle: 1000}, running: 2},
		{file: "stat-short-cpu.txt", wantErr: ErrHostFormat},
		{file: "stat-bad-cpu.txt", wantErr: ErrHostFormat},
		{file: "softirqs-2cpu.txt", wantErr: ErrHostFormat}, // no cpu line
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s, err := ParseHostStat(hostFile(t, tt.file))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.CPUs) != tt.cpus || s.All != tt.all || s.ProcsRunning != tt.running {
				t.Errorf("%d CPUs, all %+v, %d running; want %d, %+v, %d", len(s.CPUs), s.All, s.ProcsRunning, tt.cpus, tt.all, tt.running)
			}
			for i, c := range s.CPUs {
				if c.CPU != i {
					t.Errorf("cpu line %d is CPU %d", i, c.CPU)
				}
			}
		})
	}
}

func TestCPUTimesSub(t *testing.T) {
	a := CPUTimes{User: 10, System: 5, Idle: 100, Steal: 3}
	b := CPUTimes{User: 30, System: 6, Idle: 90, Steal: 10, SoftIRQ: 4}
	d := b.Sub(a)
	if d.User != 20 || d.System != 1 || d.Idle != 0 || d.Steal != 7 || d.SoftIRQ != 4 || d.Busy() != 32 || d.Total() != 32 {
		t.Errorf("%+v (busy %d, total %d)", d, d.Busy(), d.Total())
	}
}

func TestParseSoftirqs(t *testing.T) {
	s, err := ParseSoftirqs(hostFile(t, "softirqs-2cpu.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.CPUs, []int{0, 1}) || len(s.Types) != 10 || s.Types[3].Name != "NET_RX" || !reflect.DeepEqual(s.Types[3].PerCPU, []uint64{13564488, 15046759}) {
		t.Errorf("%+v", s)
	}
	for _, bad := range []string{"softirqs-short-row.txt", "stat-2cpu.txt", "loadavg.txt"} {
		if _, err := ParseSoftirqs(hostFile(t, bad)); !errors.Is(err, ErrHostFormat) {
			t.Errorf("%s: error %v, want ErrHostFormat", bad, err)
		}
	}
}

func TestParseLoadavg(t *testing.T) {
	l, err := ParseLoadavg(hostFile(t, "loadavg.txt"))
	if err != nil || l != (Loadavg{3.07, 2.33, 4.54, 115}) {
		t.Errorf("%+v, %v", l, err)
	}
	if _, err := ParseLoadavg(hostFile(t, "loadavg-short.txt")); !errors.Is(err, ErrHostFormat) {
		t.Errorf("short: %v", err)
	}
}

func TestParseCPUList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"0-3,8,10-11\n", []int{0, 1, 2, 3, 8, 10, 11}, true},
		{"1", []int{1}, true},
		{"", []int(nil), true},
		{"3-1", nil, false},
		{"1,1", nil, false},
		{"0-99999", nil, false},
		{"a", nil, false},
	} {
		got, err := ParseCPUList([]byte(tt.in))
		if (err == nil) != tt.ok || tt.ok && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// The host's files, read live, parse.
func TestHostFilesLive(t *testing.T) {
	fs := FS{}
	s, err := fs.HostStat()
	if err != nil || len(s.CPUs) == 0 || s.ProcsRunning < 1 {
		t.Fatalf("stat: %+v, %v", s, err)
	}
	if _, err := fs.Softirqs(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Loadavg(); err != nil {
		t.Fatal(err)
	}
	cpus, err := fs.AllowedCPUs(os.Getpid())
	if err != nil || len(cpus) == 0 {
		t.Fatalf("allowed: %v, %v", cpus, err)
	}
}

func FuzzParseHostStat(f *testing.F) {
	for _, n := range []string{"stat-2cpu.txt", "stat-steal-4cpu.txt", "stat-old-kernel.txt", "stat-bad-cpu.txt"} {
		f.Add(hostFile(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseHostStat(b)
		if err == nil && len(s.CPUs) > MaxCPUs {
			t.Fatalf("%d CPUs", len(s.CPUs))
		}
	})
}

func FuzzParseSoftirqs(f *testing.F) {
	f.Add(hostFile(f, "softirqs-2cpu.txt"))
	f.Add(hostFile(f, "softirqs-short-row.txt"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSoftirqs(b)
		if err != nil {
			return
		}
		for _, r := range s.Types {
			if len(r.PerCPU) != len(s.CPUs) {
				t.Fatalf("row %s: %d counts for %d CPUs", r.Name, len(r.PerCPU), len(s.CPUs))
			}
		}
	})
}

func FuzzParseCPUList(f *testing.F) {
	f.Add([]byte("0-3,8,10-11"))
	f.Add([]byte("1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cpus, err := ParseCPUList(b)
		if err == nil && len(cpus) > MaxCPUs {
			t.Fatalf("%d CPUs", len(cpus))
		}
	})
}

func FuzzParseLoadavg(f *testing.F) {
	f.Add(hostFile(f, "loadavg.txt"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseLoadavg(b) })
}
