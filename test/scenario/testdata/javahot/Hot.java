// Hot is the JVM scenario: a thread that computes in one named method,
// compiled by the JIT (compute), or in a method too large for the JIT
// to compile, which the interpreter runs for ever (huge: more than
// 8000 bytes of bytecode, HotSpot's DontCompileHugeMethods limit), or a
// program that allocates short-lived objects beside a live heap that
// fills most of it, so that the collector takes the CPU (gc), or one that
// loads the same class through a new class loader again and again in a
// JVM told to compile everything (-Xcomp, given by the launcher in this
// mode only), so that its JIT compilers take the CPU (jit). No other flag
// is given to the JVM but its heap's size.
public class Hot {
    static volatile long sink;

    // computeLoop is the hot method of compute: C2 compiles it (on stack
    // replacement, then whole) within a second.
    static long computeLoop(long n) {
        long x = 1;
        for (long i = 0; i < n; i++) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            x ^= (x >>> 13);
        }
        return x;
    }

    // Node is one cell of the live list of gc.
    static final class Node {
        final long[] payload = new long[4];
        Node next;
    }

    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "compute";
        switch (mode) {
            case "compute": {
                sink += computeLoop(50_000_000L); // compiled by now
                System.out.println("ready");
                while (true) sink += computeLoop(100_000_000L);
            }
            case "huge": {
                sink += Huge.hugeLoop(1);
                System.out.println("ready");
                while (true) sink += Huge.hugeLoop(1000);
            }
            case "gc": {
                // A live list of 40% of the heap, each cell replaced at
                // random: every collection marks it all, and the
                // replaced cells promoted meanwhile are garbage.
                int live = (int) (Runtime.getRuntime().maxMemory() * 4 / 10 / 80);
                Node[] cells = new Node[live];
                for (int i = 0; i < live; i++) cells[i] = new Node();
                System.out.println("ready");
                java.util.SplittableRandom r = new java.util.SplittableRandom(1);
                while (true) {
                    cells[r.nextInt(live)] = new Node();
                    byte[] garbage = new byte[r.nextInt(64, 512)];
                    sink += garbage.length;
                }
            }
            case "jit": {
                java.net.URL[] where = { new java.io.File(args[1]).toURI().toURL() };
                System.out.println("ready");
                while (true) {
                    try (java.net.URLClassLoader cl = new java.net.URLClassLoader(where, null)) {
                        ((Runnable) cl.loadClass("Work").getDeclaredConstructor().newInstance()).run();
                    }
                }
            }
            default:
                System.err.println("usage: Hot compute|huge|gc|jit");
                System.exit(2);
        }
    }
}
