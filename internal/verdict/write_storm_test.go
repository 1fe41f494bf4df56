package verdict

import "testing"

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
