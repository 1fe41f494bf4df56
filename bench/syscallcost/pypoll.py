# pypoll.py COUNTFILE: the Python target of syscallcost. A function a few
# Python frames deep reads a non-blocking socket in a loop, each read
# failing with EAGAIN (the busy poll in Python); on SIGUSR1 it writes its
# count of reads to COUNTFILE ("calls=N"), the measure of how much a
# tracer slows it.
import os
import signal
import socket
import sys

count = 0


def on_usr1(sig, frame):
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("calls=%d\n" % count)
    os.rename(tmp, sys.argv[1])


class Ingest:
    def __init__(self, sock):
        self.sock = sock

    def read(self):
        try:
            return self.sock.recv(4096)
        except BlockingIOError:
            return None

    def drain(self):
        global count
        while True:
            for _ in range(1000):
                self.read()
            count += 1000


def main():
    signal.signal(signal.SIGUSR1, on_usr1)
    a, b = socket.socketpair()
    a.setblocking(False)
    print("ready", flush=True)
    Ingest(a).drain()


main()
