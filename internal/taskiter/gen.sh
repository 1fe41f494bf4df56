#!/bin/sh
# Regenerates the BPF objects and their Go wrappers (taskiter_*, threadwalk_*, procs_*
# and procwalk_*_bpfel.*) from bpf/. Run from anywhere; internal/bpfgen.sh says what it needs.
set -eu
here=$(dirname "$0")
exec "$here/../bpfgen.sh" "$here"
