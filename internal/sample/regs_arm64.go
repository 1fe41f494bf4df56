package sample

// arm64 perf_regs numbers (arch/arm64/include/uapi/asm/perf_regs.h):
// X29 is the frame pointer, X30 the link register.
const (
	regBP = 29
	regLR = 30
	regSP = 31
	regIP = 32
)
