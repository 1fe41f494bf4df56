package sample

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

const testSampleType = sampleTID | sampleTime | sampleIP | sampleCallchain | sampleRegsUser | sampleStackUser | samplePeriod

// testLayout is x86_64's, whatever the test runs on, so the records below
// mean the same everywhere.
var testLayout = Layout{
	SampleType: testSampleType,
	RegsMask:   1<<6 | 1<<7 | 1<<8,
	StackBytes: 64,
	RegIP:      8, RegSP: 7, RegBP: 6, RegLR: -1,
}

// encodeSample writes a sample record as the kernel would for testLayout.
func encodeSample(ip uint64, pid, tid uint32, time, period uint64, chain []uint64, bp, sp, rip uint64, stack []byte, dyn uint64) []byte {
	b := make([]byte, 8)
	u64 := func(v uint64) { b = binary.NativeEndian.AppendUint64(b, v) }
	u64(ip)
	b = binary.NativeEndian.AppendUint32(b, pid)
	b = binary.NativeEndian.AppendUint32(b, tid)
	u64(time)
	u64(period)
	u64(uint64(len(chain)))
	for _, pc := range chain {
		u64(pc)
	}
	u64(2) // PERF_SAMPLE_REGS_ABI_64
	u64(bp)
	u64(sp)
	u64(rip)
	u64(uint64(len(stack)))
	if len(stack) > 0 {
		b = append(b, stack...)
		u64(dyn)
	}
	binary.NativeEndian.PutUint32(b, recordSample)
	binary.NativeEndian.PutUint16(b[6:], uint16(len(b)))
	return b
}

func TestParseSample(t *testing.T) {
	ctxKernel := uint64(0xffffffffffffff80) // PERF_CONTEXT_KERNEL, (u64)-128
	stack := make([]byte, 64)
	for i := range stack {
		stack[i] = byte(i)
	}
	rec := encodeSample(0xffffffff81001234, 100, 101, 5000, 10101010,
		[]uint64{ctxKernel, 0xffffffff81001234, 0xffffffff81005678}, 0x7ffd0010, 0x7ffd0000, 0x401000, stack, 40)
	s, err := ParseSample(rec, testLayout)
	if err != nil {
		t.Fatal(err)
	}
	if s.TID != 101 || s.Time != 5000 || s.Period != 10101010 || s.IP != 0xffffffff81001234 {
		t.Errorf("got TID %d Time %d Period %d IP %#x", s.TID, s.Time, s.Period, s.IP)
	}
	if want := []uint64{0xffffffff81001234, 0xffffffff81005678}; !slices.Equal(s.Kernel, want) {
		t.Errorf("Kernel = %#x, want %#x (markers stripped)", s.Kernel, want)
	}
	if !s.UserRegsValid || s.Regs != (Regs{IP: 0x401000, SP: 0x7ffd0000, BP: 0x7ffd0010}) {
		t.Errorf("Regs = %+v (valid %v)", s.Regs, s.UserRegsValid)
	}
	if !slices.Equal(s.Stack, stack[:40]) {
		t.Errorf("Stack has %d bytes, want the 40 of dyn_size", len(s.Stack))
	}

	// No user registers (ABI_NONE): no regs follow the abi word.
	noRegs := encodeSample(1, 1, 2, 3, 4, nil, 0, 0, 0, nil, 0)
	noRegs = slices.Delete(noRegs, 7*8, 7*8+24)    // drop bp, sp, ip
	binary.NativeEndian.PutUint64(noRegs[6*8:], 0) // abi
	binary.NativeEndian.PutUint16(noRegs[6:], uint16(len(noRegs)))
	s, err = ParseSample(noRegs, testLayout)
	if err != nil || s.UserRegsValid || s.Stack != nil {
		t.Errorf("without user regs: %+v, %v", s, err)
	}

	for _, tc := range []struct {
		name string
		rec  []byte
	}{
		{"truncated", rec[:len(rec)-9]},
		{"stack larger than asked", encodeSample(1, 1, 2, 3, 4, nil, 0, 0, 0, make([]byte, 72), 8)},
		{"huge callchain", func() []byte {
			b := slices.Clone(rec)
			binary.NativeEndian.PutUint64(b[40:], 1<<40)
			return b
		}()},
	} {
		var fe *FormatError
		if _, err := ParseSample(tc.rec, testLayout); !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want a FormatError", tc.name, err)
		}
	}
}

func FuzzParseSample(f *testing.F) {
	stack := make([]byte, 64)
	f.Add(encodeSample(1, 2, 3, 4, 5, []uint64{^uint64(127), 6}, 7, 8, 9, stack, 16), uint64(testSampleType), uint64(testLayout.RegsMask), uint32(64))
	f.Add(encodeSample(1, 2, 3, 4, 5, nil, 7, 8, 9, nil, 0), uint64(testSampleType), uint64(1<<29|1<<30|1<<31|1<<32), uint32(0))
	f.Fuzz(func(t *testing.T, rec []byte, sampleType, regsMask uint64, stackBytes uint32) {
		l := Layout{SampleType: sampleType, RegsMask: regsMask, StackBytes: stackBytes, RegIP: 8, RegSP: 7, RegBP: 6, RegLR: -1}
		s, err := ParseSample(rec, l)
		if err != nil {
			return
		}
		if len(s.Kernel) > maxCallchain {
			t.Errorf("%d callchain entries", len(s.Kernel))
		}
		if uint64(len(s.Stack)) > uint64(stackBytes) {
			t.Errorf("%d stack bytes, more than %d", len(s.Stack), stackBytes)
		}
	})
}

// encodeComm writes a PERF_RECORD_COMM as the kernel would for an event
// with sample_id_all and testLayout's TID and TIME.
func encodeComm(exec bool, pid, tid uint32, comm string, time uint64) []byte {
	b := make([]byte, 8)
	b = binary.NativeEndian.AppendUint32(b, pid)
	b = binary.NativeEndian.AppendUint32(b, tid)
	name := append([]byte(comm), 0)
	for len(name)%8 != 0 {
		name = append(name, 0)
	}
	b = append(b, name...)
	b = binary.NativeEndian.AppendUint32(b, pid) // sample_id: pid, tid
	b = binary.NativeEndian.AppendUint32(b, tid)
	b = binary.NativeEndian.AppendUint64(b, time)
	binary.NativeEndian.PutUint32(b, recordComm)
	if exec {
		binary.NativeEndian.PutUint16(b[4:], miscCommExec)
	}
	binary.NativeEndian.PutUint16(b[6:], uint16(len(b)))
	return b
}

// withoutSampleID drops the sample_id of a record encodeComm wrote, as an
// event without sample_id_all writes it.
func withoutSampleID(rec []byte) []byte {
	rec = rec[:len(rec)-16]
	binary.NativeEndian.PutUint16(rec[6:], uint16(len(rec)))
	return rec
}

func TestParseComm(t *testing.T) {
	idLayout := testLayout
	idLayout.SampleIDAll = true
	withCPU := idLayout
	withCPU.SampleType |= sampleCPU
	tests := []struct {
		name    string
		rec     []byte
		layout  Layout
		want    Comm
		wantErr bool
	}{
		{name: "exec", rec: encodeComm(true, 100, 100, "phasetwo", 5000), layout: idLayout,
			want: Comm{PID: 100, TID: 100, Comm: "phasetwo", Exec: true, Time: 5000}},
		{name: "rename", rec: encodeComm(false, 100, 101, "worker", 7), layout: idLayout,
			want: Comm{PID: 100, TID: 101, Comm: "worker", Time: 7}},
		{name: "name of 15 bytes", rec: encodeComm(true, 1, 1, "abcdefghijklmno", 9), layout: idLayout,
			want: Comm{PID: 1, TID: 1, Comm: "abcdefghijklmno", Exec: true, Time: 9}},
		{name: "no sample_id", rec: withoutSampleID(encodeComm(true, 1, 1, "x", 9)), layout: testLayout,
			want: Comm{PID: 1, TID: 1, Comm: "x", Exec: true}},
		{name: "truncated", rec: encodeComm(true, 1, 1, "x", 9)[:20], layout: idLayout, wantErr: true},
		{name: "sample_id longer than the record", rec: encodeComm(true, 1, 1, "", 9)[:24], layout: withCPU, wantErr: true},
		{name: "not a comm", rec: encodeSample(1, 1, 2, 3, 4, nil, 0, 0, 0, nil, 0), layout: idLayout, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseComm(tt.rec, tt.layout)
			if tt.wantErr {
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("ParseComm = %+v, %v; want a FormatError", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseComm = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseComm(f *testing.F) {
	f.Add(encodeComm(true, 1, 2, "phasetwo", 3), uint64(testSampleType), true)
	f.Add(encodeComm(false, 1, 2, "", 3), uint64(sampleTID|sampleTime|sampleCPU|sampleIdentifier), true)
	f.Fuzz(func(t *testing.T, rec []byte, sampleType uint64, idAll bool) {
		c, err := ParseComm(rec, Layout{SampleType: sampleType, SampleIDAll: idAll})
		if err == nil && len(c.Comm) > maxComm {
			t.Errorf("name of %d bytes", len(c.Comm))
		}
	})
}
