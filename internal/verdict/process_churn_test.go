package verdict

import "testing"

func TestProcessChurn(t *testing.T) {
	testJudge(t, []judgeCase{
		{name: "process churn", o: churn(300, 5), want: ProcessChurn, tid: 1},
		{name: "churn by children's CPU", o: churn(5, ChurnChildrenCPU+1), want: ProcessChurn, tid: 1},
		{name: "a few children", o: churn(0.9*ChurnRate, 0.9*ChurnChildrenCPU), want: Healthy},

		{name: "children reaped just below ChurnRate", o: churn(0.99*ChurnRate, 0), want: Healthy},
		{name: "children reaped just above ChurnRate", o: churn(1.01*ChurnRate, 0), want: ProcessChurn, tid: 1},
		{name: "children's CPU just below ChurnChildrenCPU", o: churn(5, 0.99*ChurnChildrenCPU), want: Healthy},
		{name: "children's CPU just above ChurnChildrenCPU", o: churn(5, 1.01*ChurnChildrenCPU), want: ProcessChurn, tid: 1},
	})
}
