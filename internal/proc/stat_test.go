package proc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		file    string
		want    Stat
		kthread bool
		wantErr error
	}{
		{file: "plain.txt", want: Stat{PID: 3036, Comm: "cat", State: 'R', PPID: 3034, Flags: 4194304, UTime: 7, STime: 3, NumThreads: 1, StartTime: 16979, RSSPages: 412, Processor: 1}},
		{file: "waited-children.txt", want: Stat{PID: 812, Comm: "bash", State: 'S', PPID: 1, Flags: 4194560, UTime: 33, STime: 21, CUTime: 1204, CSTime: 877, NumThreads: 1, StartTime: 2406, RSSPages: 1406, Processor: 0}},
		{file: "comm-with-parens.txt", want: Stat{PID: 4677, Comm: "a (b) c", State: 'S', PPID: 1, Flags: 1077936192, UTime: 912, STime: 8810, NumThreads: 12, StartTime: 345, RSSPages: -1, Processor: 0}},
		{file: "kthread.txt", kthread: true, want: Stat{PID: 2, Comm: "kthreadd", State: 'S', Flags: 2129984, NumThreads: 1, StartTime: 2, Processor: 1}},
		{file: "truncated.txt", wantErr: ErrStatFormat},
		{file: "bad-pid.txt", wantErr: ErrStatFormat},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "stat", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseStat(data)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseStat error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStat: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseStat =\n %+v\nwant\n %+v", got, tt.want)
			}
			if got.KernelThread() != tt.kthread {
				t.Errorf("KernelThread() = %v, want %v", got.KernelThread(), tt.kthread)
			}
		})
	}
}

func TestParseStatSelf(t *testing.T) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStat(data)
	if err != nil {
		t.Fatalf("ParseStat(/proc/self/stat): %v", err)
	}
	// /proc/self is the reading process.
	if st.PID != os.Getpid() || st.PPID != os.Getppid() {
		t.Errorf("pid/ppid = %d/%d, want %d/%d", st.PID, st.PPID, os.Getpid(), os.Getppid())
	}
}

func FuzzParseStat(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "stat", "*.txt"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(data)
		if err != nil {
			return
		}
		if len(st.Comm) > len(data) {
			t.Fatalf("comm longer than input")
		}
	})
}
