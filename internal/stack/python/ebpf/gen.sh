#!/bin/sh
# Regenerates the BPF objects and their Go wrappers (pyframes_*_bpfel.*)
# from bpf/pyframes.bpf.c. The output depends on the compiler and headers,
# so it is pinned to Debian 12's packages:
#
#   apt-get install clang-14 llvm-14 libbpf-dev linux-libc-dev
#
# Run from anywhere; CI runs it and then `git diff --exit-code`.
set -eu
cd "$(dirname "$0")"
for tool in clang-14 llvm-strip-14; do
	command -v "$tool" >/dev/null || {
		echo "gen.sh: $tool not found (apt-get install clang-14 llvm-14)" >&2
		exit 1
	}
done
[ -f /usr/include/bpf/bpf_helpers.h ] || {
	echo "gen.sh: bpf/bpf_helpers.h not found (apt-get install libbpf-dev)" >&2
	exit 1
}
go generate .
