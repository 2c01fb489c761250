// Starts one OpenSearch node from the jars on the classpath, with the netty4 HTTP transport,
// the way OpenSearch's own test framework embeds a node (MockNode). Run by scripts/services.sh:
//   java -cp 'LIBS/*' scripts/engines/OpenSearchNode.java path.home=DIR http.port=9200 ...
// Every argument is a node setting KEY=VALUE. The node stops on SIGTERM.

import java.util.Collections;
import java.util.List;

import org.opensearch.Version;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public class OpenSearchNode {
    /** Node's constructor that takes classpath plugins is protected. */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment, List<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder settings = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq < 1) {
                throw new IllegalArgumentException("expected KEY=VALUE, got " + arg);
            }
            settings.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Environment environment =
            InternalSettingsPreparer.prepareEnvironment(settings.build(), Collections.emptyMap(), null, () -> "logcollect-node");
        Node node = new EmbeddedNode(environment, List.of(Netty4Plugin.class));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
        }));
        node.start();
        System.out.println("OpenSearch " + Version.CURRENT + " node started");
        Thread.currentThread().join();
    }
}
