# A hot Python function for the perf map tests: under -X perf, CPython
# (3.12+) calls each function through a trampoline of its own, in
# anonymous executable memory, and writes its address to
# /tmp/perf-PID.map as "py::hot_python:/path/hot.py"; the trampoline
# frame is a caller of the interpreter's frames in every sample.


def hot_python(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


print("ready", flush=True)
while True:
    hot_python(100000)
