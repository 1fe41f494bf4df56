// Gen writes Huge.java: hugeLoop, whose loop body is 600 statements of
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
        if (!new File("javahot").setExecutable(true)) {
            throw new RuntimeException("cannot make javahot executable");
        }
    }
}
