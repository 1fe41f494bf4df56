# pyloop.py COUNTFILE: the Python target of recordcost. A method calls
# another in a loop, a few Python frames deep, as a service's hot path
# does; on SIGUSR1 it writes its count of calls to COUNTFILE ("calls=N"),
# the measure of how much a recorder slows it.
import os
import signal
import sys

count = 0


def on_usr1(sig, frame):
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("calls=%d\n" % count)
    os.rename(tmp, sys.argv[1])


class Index:
    def score(self, i):
        return (i * i) % 7

    def rebuild(self):
        global count
        while True:
            for i in range(1000):
                self.score(i)
            count += 1000


def main():
    signal.signal(signal.SIGUSR1, on_usr1)
    print("ready", flush=True)
    Index().rebuild()


main()
