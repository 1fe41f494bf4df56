package sample

// regsMask is sample_regs_user for this architecture: the registers a user
// stack unwinder starts from.
func regsMask() uint64 {
	var m uint64
	for _, r := range []int{regIP, regSP, regBP, regLR} {
		if r >= 0 {
			m |= 1 << r
		}
	}
	return m
}

// archLayout is the Layout of records from an event opened with this
// sample_type on this architecture.
func archLayout(sampleType uint64, stackBytes uint32) Layout {
	return Layout{
		SampleType: sampleType,
		RegsMask:   regsMask(),
		StackBytes: stackBytes,
		RegIP:      regIP, RegSP: regSP, RegBP: regBP, RegLR: regLR,
	}
}
