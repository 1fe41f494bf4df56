// Package hotspot names the frames of a HotSpot JVM (OpenJDK) started with
// no flag at all: methods the JIT compiled, by their Java names
// ("Hot.computeLoop", inner classes with the JVM's $), interpreted
// methods ("Huge.hugeLoop (interpreted)") and the JVM's stubs, as the
// JVM itself names them. It is a stack.Runtime and a
// stack.StackExpander, registered from init; its frames have Kind
// "hotspot".
//
// # How: the JVM's own perf map, asked for through its attach mechanism
//
// Two ways were open. (b) Read HotSpot's description of its own
// structures (the gHotSpotVMStructs tables libjvm.so exports) and walk
// its code cache in its memory, as the OpenTelemetry profiler does: it
// needs nothing from the JVM, but is a reader of a dozen structures
// (CodeHeap, CodeBlob, nmethod, Method, ConstMethod, ConstantPool,
// Symbol, Klass) whose fields move between releases, each read hostile,
// and a week's work to get right and keep right. (a) Ask the JVM: since
// JDK 17, the diagnostic command Compiler.perfmap writes
// /tmp/perf-<PID>.map (its /tmp, its PID) with every blob of its code
// cache, which is what jcmd does through the JVM's attach mechanism
// (attach.go). The JVM names its code itself, for every release that has
// the command, and the map is then read as any perf map is (package
// perfmap, through the process's root). (a) is what is done here; its
// price is an intrusion, said in a note each time: the JVM starts an
// Attach Listener thread (for good), walks its code cache at a safepoint
// and writes a file in its /tmp. --no-attach forbids it; a map the JVM
// already writes (-XX:+DumpPerfMapAtExit, perf-map-agent) is read either
// way.
//
// The map is asked for when a sample has a frame in anonymous code (the
// code cache) that nothing names: at the first such sample, and again
// when the JIT compiled code since (at most every refreshInterval, at
// most maxDumps times). The sample waits for the answer (bounded), so a
// hot JIT loop is named from its first samples; a JVM that does not answer,
// or refuses (a JDK before 17 has no Compiler.perfmap), is said in one
// note and its code stays [anon]+0xADDRESS: nothing is guessed.
//
// Before SIGQUIT is sent, the JVM must catch it (SigCgt in its status: a
// JVM started with -Xrs, or still starting, would die of it), not run
// with -XX:+DisableAttachMechanism, and the trigger file
// .attach_pid<PID> must be in place in its /tmp, owned by its user: a
// SIGQUIT without it prints a thread dump on the JVM's stdout. The
// signal goes through a pidfd opened before the checks. Files are made
// and the socket reached through the process's root, each directory
// opened with RESOLVE_IN_ROOT (sys.RootDir), so a container's symbolic
// links lead nowhere outside it.
//
// # Limits
//
// The leaf frame of a sample in compiled code is named. C2 and C1 code
// keeps no frame pointer (-XX:+PreserveFramePointer would), so its
// callers are found from its frame's size instead (frames.go): the JVM
// keeps it in each method's CodeBlob, found before the code by its own
// code bounds, which must equal the map's; the stack then goes on
// through the method's callers, compiled or interpreted, to the thread's
// start. A sample taken in a method's prologue, or in a stub, may lose
// its caller.
//
// # Interpreted methods
//
// The map names the interpreter's code "Interpreter", the same for
// every method it runs. An interpreted frame keeps its Method* three
// words below its frame pointer, and HotSpot's own description of its
// structures (the gHotSpotVMStructs and gHotSpotVMTypes tables libjvm.so
// exports, the one piece of way (b) used) gives the offsets from it to
// the class's and the method's names (vmstructs.go): each pointer is
// checked (aligned, readable), the constant pool index against its
// length, and a name must be printable, or the frame stays
// "Interpreter" and a note counts it. Without the map (--no-attach, a
// JDK before 17) the interpreter's code is known by its range, the
// buffer of the stub queue AbstractInterpreter::_code that the same
// tables locate, and its frames are named the same way; compiled code
// then stays [anon]+0xADDRESS.
//
// # More limits
//
// The map is a snapshot of the code cache when the JVM wrote it: a
// method unloaded since, whose space the JIT gave to another, keeps its
// name there until the JVM is asked again, which happens only for an
// address the map lacks; a long recording of a JVM that unloads classes
// may show such a name. A JVM whose release file says it is older than
// JDK 17 is not asked at all (it would start a listener and refuse the
// command). A map older than the process (an
// earlier JVM's with the same PID) names nothing until the JVM writes it
// again. A JVM in a user namespace sees cpuwhy's root as nobody, and
// refuses its connection: its frames stay unnamed, with a note.
package hotspot
