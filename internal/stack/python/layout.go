package python

// Layout is where one minor version of CPython keeps what is read of it,
// on x86-64: byte offsets into its structures, and the constants that
// go with them. A field of -1 is absent from that version. Field names
// are those testdata/offsets.c prints, and the test compiles it against
// each version's own headers and compares.
type Layout struct {
	Minor int // 3.Minor

	// _PyRuntimeState, PyInterpreterState and PyThreadState.
	RuntimeInterpretersHead int // _PyRuntime.interpreters.head
	InterpThreadsHead       int // tstate_head (3.8-3.10), threads.head (3.11+)
	ThreadNext              int
	ThreadInterp            int
	ThreadID                int // pthread_self() of the thread
	ThreadNativeID          int // its kernel thread id (3.11+)
	ThreadFrame             int // frame (3.8-3.10), cframe (3.11-3.12), current_frame (3.13+)
	CFrameCurrent           int // _PyCFrame.current_frame (3.11-3.12)

	// The frame: PyFrameObject (3.8-3.10) or _PyInterpreterFrame (3.11+).
	FrameBack     int // f_back, previous
	FrameSize     int // the bytes read of a frame: up to its locals
	FrameCode     int // f_code, f_executable (3.13+)
	FrameInstr    int // f_lasti (an int, 3.8-3.10), prev_instr, instr_ptr (3.13+)
	FrameOwner    int // owner (3.11+), a char
	FrameIsEntry  int // is_entry (3.11), a bool
	OwnedByCStack int // the owner of the entry frames of the C stack (3.12+)

	// PyCodeObject.
	CodeAdaptive  int // co_code_adaptive: the instructions (3.11+)
	CodeQualname  int // co_qualname (3.11+)
	CodeLineTable int // co_lnotab (3.8-3.9), co_linetable (3.10+)
	CodeFilename  int
	CodeName      int
	CodeFirstLine int // co_firstlineno, an int

	// The GIL: struct _gil_runtime_state, in _PyRuntime.ceval (3.8-3.11),
	// or pointed to by the main interpreter's ceval.gil (3.12+).
	RuntimeGIL    int // _PyRuntime.ceval.gil (3.8-3.11)
	InterpGIL     int // PyInterpreterState.ceval.gil, a pointer (3.12+)
	GILLastHolder int // last_holder, a PyThreadState *
	GILLocked     int // locked, an int: 1 while a thread holds it

	// Objects.
	ObjectType     int // ob_type
	TypeName       int // tp_name, a char *
	BytesSize      int // ob_size of a bytes object
	BytesData      int // ob_sval
	StrLength      int // PyASCIIObject.length
	StrState       int // its state bit field
	StrASCIIData   int // sizeof(PyASCIIObject): where an ASCII string's characters begin
	StrCompactData int // sizeof(PyCompactUnicodeObject): where other compact strings' begin
}

// layouts are the versions cpuwhy knows, by minor version. 3.8 to 3.10
// share most of their layout, as do 3.12 and 3.13 their objects; each is
// written out whole so that each can be compared with its headers.
var layouts = map[int]Layout{
	8: {
		Minor: 8, RuntimeInterpretersHead: 32, InterpThreadsHead: 8,
		ThreadNext: 8, ThreadInterp: 16, ThreadID: 176, ThreadNativeID: -1, ThreadFrame: 24, CFrameCurrent: -1,
		FrameBack: 24, FrameSize: 360, FrameCode: 32, FrameInstr: 104, FrameOwner: -1, FrameIsEntry: -1, OwnedByCStack: -1,
		CodeAdaptive: -1, CodeQualname: -1, CodeLineTable: 120, CodeFilename: 104, CodeName: 112, CodeFirstLine: 40,
		RuntimeGIL: 1152, InterpGIL: -1, GILLastHolder: 8, GILLocked: 16,
		ObjectType: 8, TypeName: 24, BytesSize: 16, BytesData: 32, StrLength: 16, StrState: 32, StrASCIIData: 48, StrCompactData: 72,
	},
	9: {
		Minor: 9, RuntimeInterpretersHead: 32, InterpThreadsHead: 8,
		ThreadNext: 8, ThreadInterp: 16, ThreadID: 176, ThreadNativeID: -1, ThreadFrame: 24, CFrameCurrent: -1,
		FrameBack: 24, FrameSize: 360, FrameCode: 32, FrameInstr: 104, FrameOwner: -1, FrameIsEntry: -1, OwnedByCStack: -1,
		CodeAdaptive: -1, CodeQualname: -1, CodeLineTable: 120, CodeFilename: 104, CodeName: 112, CodeFirstLine: 40,
		RuntimeGIL: 352, InterpGIL: -1, GILLastHolder: 8, GILLocked: 16,
		ObjectType: 8, TypeName: 24, BytesSize: 16, BytesData: 32, StrLength: 16, StrState: 32, StrASCIIData: 48, StrCompactData: 72,
	},
	10: {
		Minor: 10, RuntimeInterpretersHead: 32, InterpThreadsHead: 8,
		ThreadNext: 8, ThreadInterp: 16, ThreadID: 176, ThreadNativeID: -1, ThreadFrame: 24, CFrameCurrent: -1,
		FrameBack: 24, FrameSize: 352, FrameCode: 32, FrameInstr: 96, FrameOwner: -1, FrameIsEntry: -1, OwnedByCStack: -1,
		CodeAdaptive: -1, CodeQualname: -1, CodeLineTable: 120, CodeFilename: 104, CodeName: 112, CodeFirstLine: 40,
		RuntimeGIL: 352, InterpGIL: -1, GILLastHolder: 8, GILLocked: 16,
		ObjectType: 8, TypeName: 24, BytesSize: 16, BytesData: 32, StrLength: 16, StrState: 32, StrASCIIData: 48, StrCompactData: 72,
	},
	11: {
		Minor: 11, RuntimeInterpretersHead: 40, InterpThreadsHead: 16,
		ThreadNext: 8, ThreadInterp: 16, ThreadID: 152, ThreadNativeID: 160, ThreadFrame: 56, CFrameCurrent: 8,
		FrameBack: 48, FrameSize: 72, FrameCode: 32, FrameInstr: 56, FrameOwner: 69, FrameIsEntry: 68, OwnedByCStack: -1,
		CodeAdaptive: 184, CodeQualname: 128, CodeLineTable: 136, CodeFilename: 112, CodeName: 120, CodeFirstLine: 72,
		RuntimeGIL: 360, InterpGIL: -1, GILLastHolder: 8, GILLocked: 16,
		ObjectType: 8, TypeName: 24, BytesSize: 16, BytesData: 32, StrLength: 16, StrState: 32, StrASCIIData: 48, StrCompactData: 72,
	},
	12: {
		Minor: 12, RuntimeInterpretersHead: 40, InterpThreadsHead: 72,
		ThreadNext: 8, ThreadInterp: 16, ThreadID: 136, ThreadNativeID: 144, ThreadFrame: 56, CFrameCurrent: 0,
		FrameBack: 8, FrameSize: 72, FrameCode: 0, FrameInstr: 56, FrameOwner: 70, FrameIsEntry: -1, OwnedByCStack: 3,
		CodeAdaptive: 192, CodeQualname: 128, CodeLineTable: 136, CodeFilename: 112, CodeName: 120, CodeFirstLine: 68,
		RuntimeGIL: -1, InterpGIL: 384, GILLastHolder: 8, GILLocked: 16,
		ObjectType: 8, TypeName: 24, BytesSize: 16, BytesData: 32, StrLength: 16, StrState: 32, StrASCIIData: 40, StrCompactData: 56,
	},
	13: {
		Minor: 13, RuntimeInterpretersHead: 632, InterpThreadsHead: 7344,
		ThreadNext: 8, ThreadInterp: 16, ThreadID: 152, ThreadNativeID: 160, ThreadFrame: 72, CFrameCurrent: -1,
		FrameBack: 8, FrameSize: 72, FrameCode: 0, FrameInstr: 56, FrameOwner: 70, FrameIsEntry: -1, OwnedByCStack: 3,
		CodeAdaptive: 200, CodeQualname: 128, CodeLineTable: 136, CodeFilename: 112, CodeName: 120, CodeFirstLine: 68,
		RuntimeGIL: -1, InterpGIL: 16, GILLastHolder: 8, GILLocked: 16,
		ObjectType: 8, TypeName: 24, BytesSize: 16, BytesData: 32, StrLength: 16, StrState: 32, StrASCIIData: 40, StrCompactData: 56,
	},
}

// linetable says how a version encodes its code objects' line numbers.
func (l Layout) linetable() lineFormat {
	switch {
	case l.Minor <= 9:
		return lnotab
	case l.Minor == 10:
		return linetable310
	default:
		return locations
	}
}
