// A hot JavaScript function for the perf map tests: hotLoop computes in
// a loop, so V8 compiles it (Sparkplug, Maglev, TurboFan) and, under
// --perf-basic-prof, writes each compiled version's address to
// /tmp/perf-PID.map as "JS:*hotLoop /path/hot.js:LINE:COLUMN".
function hotLoop(n) {
	let s = 0;
	for (let i = 0; i < n; i++) {
		s += Math.sqrt(i) * (i & 7);
	}
	return s;
}

let sink = 0;
console.log("ready");
for (;;) {
	sink += hotLoop(1e6);
}
