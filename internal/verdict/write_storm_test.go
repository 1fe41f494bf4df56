package verdict

import (
	"strings"
	"testing"
)

func TestWriteStorm(t *testing.T) {
	// logging is a thread writing to a log r times a second, that share
	// of its calls: the others are reads of a pipe.
	logging := func(r, share float64) *Observation {
		return obs(thread(15, "Logger", cpu(30, 65),
			call("write", r, "/var/log/app.log", map[string]float64{"ok": 1}),
			call("read", others(r, share), "pipe", map[string]float64{"ok": 1})))
	}
	testJudge(t, []judgeCase{
		{name: "write storm", o: obs(thread(15, "Logger", cpu(30, 65), call("write", 300000, "/var/log/app.log", map[string]float64{"ok": 1}))),
			want: WriteStorm, tid: 15, syscall: "write", fd: "3 (/var/log/app.log)"},
		{name: "echo server: as many reads as writes", o: obs(thread(15, "Server", cpu(30, 65),
			call("sendto", 50000, "udp", map[string]float64{"ok": 1}), call("recvfrom", 50000, "udp", map[string]float64{"ok": 1}))), want: Healthy},

		{name: "writes just below WriteRate", o: obs(thread(15, "t", cpu(30, 65), call("write", 0.99*WriteRate, "/var/log/app.log", map[string]float64{"ok": 1}))), want: Healthy},
		{name: "writes just above WriteRate", o: obs(thread(15, "t", cpu(30, 65), call("write", 1.01*WriteRate, "/var/log/app.log", map[string]float64{"ok": 1}))),
			want: WriteStorm, tid: 15, syscall: "write", fd: "3 (/var/log/app.log)"},
		{name: "writes just below WriteShare", o: logging(50000, 0.99*WriteShare), want: Healthy},
		{name: "writes just above WriteShare", o: logging(50000, 1.01*WriteShare), want: WriteStorm, tid: 15, syscall: "write"},
	})
}

// writing is a thread writing 300k/s to fd 3 (desc), each write returning
// mean bytes.
func writing(desc, name string, mean float64) *Observation {
	s := call(name, 300000, desc, map[string]float64{"ok": 1})
	s.FDs[0].Bytes = uint64(mean * float64(s.FDs[0].Count))
	s.Bytes = s.FDs[0].Bytes
	return obs(thread(15, "yes", cpu(30, 65), s))
}

// The writes are called small only when their measured mean size is below
// SmallWriteBytes, and the advice depends on what the fd is.
func TestWriteStormWording(t *testing.T) {
	for _, tt := range []struct {
		name        string
		o           *Observation
		say, notSay []string // in the summary and advice
	}{
		{"mean just below SmallWriteBytes", writing("/var/log/app.log", "write", 0.99*SmallWriteBytes),
			[]string{"small writes", "1014 B on average", "lower the log level"}, nil},
		{"mean just above SmallWriteBytes", writing("/var/log/app.log", "write", 1.01*SmallWriteBytes),
			[]string{"the writes are not small", "1.0 KiB each"}, []string{"small writes", "log level"}},
		{"yes into /dev/null: 8 KiB writes", writing("/dev/null", "write", 8192),
			[]string{"8.0 KiB each", "volume of data"}, []string{"small writes", "log level"}},
		{"stress-ng --sock: 6.7 KB sends on a socket", writing("tcp 127.0.0.1:5432 -> 127.0.0.1:40112 ESTABLISHED", "sendto", 6700),
			[]string{"6.5 KiB each", "send less data"}, []string{"small writes", "log level"}},
		{"small sends on a socket", writing("tcp 127.0.0.1:5432 -> 127.0.0.1:40112 ESTABLISHED", "sendto", 40),
			[]string{"small writes", "coalesce the messages"}, []string{"log level"}},
		{"small writes to a pipe", writing("pipe:[1234]", "write", 40),
			[]string{"small writes", "the reader at the other end"}, []string{"log level"}},
		{"large writes to an fd not described", writing("eventfd", "write", 8192),
			[]string{"8.0 KiB each", "whatever reads it"}, []string{"small writes", "log level", "copy a file"}},
		{"size not measured", writing("/var/log/app.log", "write", 0),
			[]string{"floods fd 3 (/var/log/app.log) with writes"}, []string{"small", "each on average"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(tt.o)[0]
			if v.Pattern != WriteStorm {
				t.Fatalf("pattern %s", v.Pattern)
			}
			text := v.Summary + "\n" + strings.Join(v.Evidence, "\n") + "\n" + v.Advice
			for _, s := range tt.say {
				if !strings.Contains(text, s) {
					t.Errorf("does not say %q:\n%s", s, text)
				}
			}
			for _, s := range tt.notSay {
				if strings.Contains(text, s) {
					t.Errorf("says %q:\n%s", s, text)
				}
			}
		})
	}
}
