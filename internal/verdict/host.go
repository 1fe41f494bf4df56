package verdict

// What the host and the target's cgroups did over the window: the
// evidence of the causes outside the target's code (throttled, starved,
// steal, softirq). Package diagnose measures them; nil when not measured.

// Host is the host's CPU over the window.
type Host struct {
	CPUs int `json:"cpus"` // online CPUs
	// All is every CPU's time by mode, in percent of all the CPUs' time
	// (CPU is -1); PerCPU each CPU's, in percent of that CPU's time.
	All    HostModes   `json:"all"`
	PerCPU []HostModes `json:"per_cpu,omitempty"`
	// Runnable is the tasks running or waiting for a CPU when the window
	// ended (procs_running), cpuwhy's reading thread left out.
	Runnable int     `json:"runnable"`
	Load1    float64 `json:"load1"` // the 1-minute load average at the end
	// Softirqs are the softirqs run per second over the window, by type,
	// most first; types that ran none are left out.
	Softirqs []SoftirqRate `json:"softirqs,omitempty"`
	// Allowed are the CPUs the target may run on (its affinity within
	// its cpuset); nil when not known.
	Allowed []int `json:"allowed_cpus,omitempty"`
}

// HostModes is CPU time by mode, in percent. User holds nice, System
// neither irq nor softirq time (as /proc/stat splits them).
type HostModes struct {
	CPU     int     `json:"cpu"`
	User    float64 `json:"user"`
	System  float64 `json:"system"`
	IRQ     float64 `json:"irq"`
	SoftIRQ float64 `json:"softirq"`
	IOWait  float64 `json:"iowait"`
	Steal   float64 `json:"steal"`
	Idle    float64 `json:"idle"`
}

// Busy is the part not idle nor waiting for I/O.
func (m HostModes) Busy() float64 { return m.User + m.System + m.IRQ + m.SoftIRQ + m.Steal }

// SoftirqRate is one softirq type over the window.
type SoftirqRate struct {
	Name      string    `json:"name"`
	PerSecond float64   `json:"per_s"`
	PerCPU    []float64 `json:"per_cpu"` // per second, one per Host.PerCPU... in CPU order of /proc/softirqs
	CPUs      []int     `json:"cpus"`    // the CPU of each PerCPU entry
}

// allowedModes returns the modes of the CPUs the target may use, or all
// of them when that is not known.
func (h *Host) allowedModes() []HostModes {
	if len(h.Allowed) == 0 {
		return h.PerCPU
	}
	var out []HostModes
	for _, m := range h.PerCPU {
		for _, c := range h.Allowed {
			if m.CPU == c {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return h.PerCPU
	}
	return out
}
