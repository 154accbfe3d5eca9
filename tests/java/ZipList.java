import java.io.BufferedInputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * Reads a zip with java.util.zip.ZipInputStream (the streaming reader that ignores the
 * central directory) and prints one line per entry:
 *
 *   name-as-UTF-8-hex  d|f  bytes-read  crc-of-bytes-read  entry.getSize()  entry.getCrc()
 *
 * Usage: java ZipList ARCHIVE|- [CHARSET]   (CHARSET decodes names without the UTF-8 flag)
 * Any exception (ZipInputStream checks CRCs and sizes itself) exits non-zero.
 */
public class ZipList {
    public static void main(String[] args) throws Exception {
        Charset charset = args.length > 1 ? Charset.forName(args[1]) : StandardCharsets.UTF_8;
        InputStream raw = args[0].equals("-") ? System.in : new FileInputStream(args[0]);
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, "UTF-8");
        byte[] buf = new byte[1 << 16];
        try (ZipInputStream zin = new ZipInputStream(new BufferedInputStream(raw, 1 << 16), charset)) {
            ZipEntry entry;
            while ((entry = zin.getNextEntry()) != null) {
                CRC32 crc = new CRC32();
                long count = 0;
                int n;
                while ((n = zin.read(buf)) > 0) {
                    crc.update(buf, 0, n);
                    count += n;
                }
                out.println(hex(entry.getName()) + "\t" + (entry.isDirectory() ? "d" : "f") + "\t"
                        + count + "\t" + Long.toHexString(crc.getValue()) + "\t"
                        + entry.getSize() + "\t" + Long.toHexString(entry.getCrc()));
            }
        }
        out.flush();
    }

    private static String hex(String name) {
        StringBuilder sb = new StringBuilder();
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            sb.append(String.format("%02x", b & 0xff));
        }
        return sb.toString();
    }
}
