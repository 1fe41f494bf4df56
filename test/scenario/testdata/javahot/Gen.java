// Gen writes Huge.java (and work/Work.java, below): hugeLoop, whose loop body is 600 statements of
// about 17 bytes of bytecode each (10 KB, more than the 8000 bytes
// HotSpot's DontCompileHugeMethods lets the JIT compile), so that it is
// only ever interpreted. It also makes the launcher executable (the
// sources are copied without their modes).
import java.io.PrintWriter;
import java.io.File;

public class Gen {
    public static void main(String[] args) throws Exception {
        try (PrintWriter w = new PrintWriter("Huge.java")) {
            w.println("public class Huge {");
            w.println("    static long hugeLoop(int rounds) {");
            w.println("        long x = 1;");
            w.println("        for (int r = 0; r < rounds; r++) {");
            for (int i = 0; i < 600; i++) {
                w.println("            x = x * 31 + " + i + "; x ^= x >>> 7;");
            }
            w.println("        }");
            w.println("        return x;");
            w.println("    }");
            w.println("}");
        }
        // Work.java, for jit mode: sixteen methods of forty branches, run
        // a few hundred times by run(). Each class loader that loads it
        // anew makes the JIT compile it all again.
        new File("work").mkdir();
        try (PrintWriter w = new PrintWriter("work/Work.java")) {
            w.println("public class Work implements Runnable {");
            w.println("    public static volatile long sink;");
            for (int m = 0; m < 16; m++) {
                w.println("    static long f" + m + "(long x, int n) {");
                w.println("        for (int i = 0; i < n; i++) {");
                for (int k = 0; k < 40; k++) {
                    w.println("            if ((x & " + (k + 1) + ") == " + (k % 3) + ") x = x * " + (31 + k + m) + " + i; else x ^= (x >>> " + (k % 7 + 1) + ") + " + (k * m) + ";");
                }
                w.println("        }");
                w.println("        return x;");
                w.println("    }");
            }
            w.println("    public void run() {");
            w.println("        long x = 1;");
            w.println("        for (int r = 0; r < 300; r++) {");
            for (int m = 0; m < 16; m++) {
                w.println("            x = f" + m + "(x, 2);");
            }
            w.println("        }");
            w.println("        sink = x;");
            w.println("    }");
            w.println("}");
        }
        if (!new File("javahot").setExecutable(true)) {
            throw new RuntimeException("cannot make javahot executable");
        }
    }
}
