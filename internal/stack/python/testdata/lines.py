# lines.py FILE: prints, as JSON, the line table of every code object
# compiled from FILE and the line CPython itself gives each instruction
# offset (in bytes), for the line table test of package python.
import dis
import json
import sys


def codes(co):
    yield co
    for c in co.co_consts:
        if hasattr(c, "co_code"):
            yield from codes(c)


def lines(co):
    out = []
    if hasattr(co, "co_lines"):  # 3.10+
        for start, end, line in co.co_lines():
            for off in range(start, end, 2):
                out.append([off, line if line is not None else -1])
    else:
        starts = list(dis.findlinestarts(co))
        for off in range(0, len(co.co_code), 2):
            line = co.co_firstlineno
            for s, l in starts:
                if s <= off:
                    line = l
            out.append([off, line])
    return out


src = open(sys.argv[1]).read()
top = compile(src, sys.argv[1], "exec")
table = lambda co: (co.co_linetable if sys.version_info >= (3, 10) else co.co_lnotab)
print(json.dumps([{"name": co.co_name, "first": co.co_firstlineno, "table": list(table(co)), "lines": lines(co)} for co in codes(top)]))
