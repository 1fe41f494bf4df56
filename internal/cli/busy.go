package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cpuwhy/cpuwhy/internal/escape"
	"io"
	"math"

	"github.com/spf13/cobra"

	"github.com/cpuwhy/cpuwhy/internal/target"
	"github.com/cpuwhy/cpuwhy/internal/verdict"
)

// addMinCPUFlag adds --min-cpu to a command that examines the busiest
// process when none is named. Its default is the diagnosis's own bar for
// "busy" (verdict.BusyCPU): below it a diagnosis could only say healthy,
// so an idle host gets that answer at once instead of a sleeping PID 1
// watched for a window.
func addMinCPUFlag(cmd *cobra.Command, min *float64) {
	floatVar(cmd.Flags(), min, "min-cpu", "", verdict.BusyCPU, cpuShare,
		"with no target: the least CPU, in % of a core, the busiest process must use to be examined (0: examine it whatever it uses)")
}

func checkMinCPU(min float64) error {
	if min < 0 || math.IsNaN(min) {
		return usageError{fmt.Errorf("--min-cpu %v: give a percentage of a core, 0 or more", min)}
	}
	return nil
}

// nothingBusy prints the selection's answer that no process burns CPU, one
// line (or one JSON object), and reports whether err was that answer: an
// idle host is a finding, exit status 0, not a failure.
func nothingBusy(w io.Writer, err error, asJSON bool) (bool, error) {
	var idle *target.IdleError
	if !errors.As(err, &idle) {
		return false, nil
	}
	if asJSON {
		type busiest struct {
			PID        int     `json:"pid"`
			Name       string  `json:"name"`
			CPU        float64 `json:"cpu"`
			Window     float64 `json:"window_s"`
			MinCPU     float64 `json:"min_cpu"`
			Interrupts float64 `json:"interrupts_cpu"` // the kernel's interrupts and softirqs, % of a core
		}
		b, err := json.Marshal(struct {
			NothingBusy busiest `json:"nothing_busy"`
		}{busiest{idle.PID, idle.Name, math.Round(idle.CPU*10) / 10, idle.Window.Seconds(), idle.MinCPU, math.Round(idle.Interrupts*10) / 10}})
		if err != nil {
			return true, fmt.Errorf("encoding report: %w", err)
		}
		_, err = escape.Fprintf(w, "%s\n", b)
		return true, err
	}
	_, werr := escape.Fprintf(w, "cpuwhy: %v\n", idle)
	return true, werr
}
