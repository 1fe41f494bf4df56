package hotspot

import "strings"

// MethodName turns the name HotSpot gives a compiled method in its perf
// map, "RETURN CLASS.METHOD(PARAMETERS)" ("long Hot.computeLoop(long)",
// "void java.util.HashMap$Node.<init>(int, java.lang.Object)"), into
// the method alone, as a Java stack trace names it: "Hot.computeLoop",
// "java.util.HashMap$Node.<init>" (inner classes keep the JVM's $). A
// name not of that shape (the interpreter, stubs: "Interpreter",
// "StubRoutines (1)") is not a method: ok is false.
func MethodName(name string) (method string, ok bool) {
	open := strings.IndexByte(name, '(')
	if open <= 0 || !strings.HasSuffix(name, ")") {
		return "", false
	}
	head := name[:open]
	if sp := strings.LastIndexByte(head, ' '); sp >= 0 {
		head = head[sp+1:]
	}
	dot := strings.LastIndexByte(head, '.')
	if dot <= 0 || dot == len(head)-1 {
		return "", false
	}
	return head, true
}
