# target.py MODE: a Python program whose stacks the tests of package
# python read. It prints "ready" once it runs what MODE says, then runs
# until killed. Lines the tests look for are marked "# line:NAME"; the
# tests find their numbers in this file.
import socket
import sys
import threading
import time


class Indexer:
    def rebuild(self, n):
        total = 0
        while True:
            for i in range(n):
                total += i * i  # line:rebuild
            total %= 1000003


def drain(sock):
    while True:
        try:
            sock.recv(4096)  # line:drain
        except BlockingIOError:
            pass


def recurse(depth):
    if depth == 0:
        spin()
    return recurse(depth - 1)  # line:recurse


def spin():
    x = 0
    while True:
        x += 1  # line:spin


def worker(k):
    total = 0
    while True:
        total += k  # line:worker


def hold(libc):
    # A C call made through ctypes.PyDLL keeps the GIL: this thread holds
    # it, asleep, 100 ms at a time, while the workers wait for it.
    libc.prctl(15, b"hold", 0, 0, 0)  # PR_SET_NAME: the tests find it
    while True:
        libc.usleep(100000)  # line:hold


async def crunch(n):
    total = 0
    while True:
        for i in range(n):
            total += i * i  # line:crunch
        total %= 1000003


async def serve():
    import asyncio
    await asyncio.gather(crunch(1000))


def squeeze(data, until):
    import zlib
    while time.perf_counter() < until:
        zlib.compress(data, 9)  # line:squeeze


def count(until):
    x = 0
    while time.perf_counter() < until:
        x += 1  # line:count


def alternate():
    # Turns of 25 ms: squeeze's in zlib's C code, count's in Python's.
    data = bytes(range(256)) * 64
    while True:
        squeeze(data, time.perf_counter() + 0.025)
        count(time.perf_counter() + 0.025)


def main():
    mode = sys.argv[1]
    if mode == "compute":
        print("ready", flush=True)
        Indexer().rebuild(1000)
    elif mode == "poll":
        a, b = socket.socketpair()
        a.setblocking(False)
        print("ready", flush=True)
        drain(a)
    elif mode == "recurse":
        sys.setrecursionlimit(10000)
        print("ready", flush=True)
        recurse(int(sys.argv[2]))
    elif mode == "corrupt":
        # Points the name of rebuild's code object (at the offset given)
        # at an int: the interpreter never reads it while the loop runs.
        import ctypes
        global bogus
        bogus = 10**20
        code = Indexer.rebuild.__code__
        ctypes.c_void_p.from_address(id(code) + int(sys.argv[2])).value = id(bogus)
        print("ready", flush=True)
        Indexer().rebuild(1000)
    elif mode == "alternate":
        print("ready", flush=True)
        alternate()
    elif mode == "asyncio":
        import asyncio
        print("ready", flush=True)
        asyncio.run(serve())
    elif mode == "threads":
        n = int(sys.argv[2])
        for k in range(n):
            threading.Thread(target=worker, args=(k,), name="worker-%d" % k, daemon=True).start()
        print("ready", flush=True)
        threading.Event().wait()
    elif mode == "gilhog":
        import ctypes
        libc = ctypes.PyDLL(None)
        for k in range(int(sys.argv[2])):
            threading.Thread(target=worker, args=(k,), daemon=True).start()
        threading.Thread(target=hold, args=(libc,), daemon=True).start()
        time.sleep(0.2)  # the holder has named itself
        print("ready", flush=True)
        threading.Event().wait()


main()
