package sample

// x86_64 perf_regs numbers (arch/x86/include/uapi/asm/perf_regs.h).
const (
	regBP = 6
	regSP = 7
	regIP = 8
	regLR = -1
)
