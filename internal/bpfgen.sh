#!/bin/sh
# Regenerates the BPF objects and their Go wrappers (bpf2go, through the
# package's go:generate lines) of each package directory given. The
# output depends on the compiler and headers, so it is pinned to Debian
# 12's packages:
#
#   apt-get install clang-14 llvm-14 libbpf-dev linux-libc-dev
#
# Each BPF package's gen.sh calls it; CI runs those, then
# `git diff --exit-code`.
set -eu
for tool in clang-14 llvm-strip-14; do
	command -v "$tool" >/dev/null || {
		echo "bpfgen.sh: $tool not found (apt-get install clang-14 llvm-14)" >&2
		exit 1
	}
done
[ -f /usr/include/bpf/bpf_helpers.h ] || {
	echo "bpfgen.sh: bpf/bpf_helpers.h not found (apt-get install libbpf-dev)" >&2
	exit 1
}
for dir in "$@"; do
	(cd "$dir" && go generate .)
done
