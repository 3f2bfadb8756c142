//go:build fault

package faulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tlsNode is a second RabbitMQ node that a test starts for itself, with its
// own name, ports, configuration and data under t.TempDir(), so that TLS
// settings never touch the shared broker on 5672.
type tlsNode struct {
	Name     string // warren-tls-<hex>@localhost
	TLSPort  int    // amqps listener on 127.0.0.1
	User     string // the node's only user (default_user)
	Password string
	dir      string
	log      string // the node's stdout and stderr
}

// rabbitBin finds a RabbitMQ script. The Debian package's /usr/sbin ones
// switch to the rabbitmq user when run as root, who cannot read a test's
// temporary directory; the real scripts are in /usr/lib/rabbitmq/bin.
func tlsRabbitBin(t *testing.T, name string) string {
	t.Helper()
	if p := filepath.Join("/usr/lib/rabbitmq/bin", name); tlsFileExists(p) {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: the TLS test starts a RabbitMQ node of its own (scripts/ensure-rabbitmq.sh installs it)", name)
	}
	return p
}

func tlsFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func tlsFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tlsRandHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startTLSNode boots a node whose only AMQP listener is TLS on a loopback
// port, requiring a client certificate signed by pki's CA (verify_peer,
// fail_if_no_peer_cert), with user and password as its only user. It
// waits until the node is up and stops it when the test ends.
func startTLSNode(t *testing.T, pki testPKI, user, password string) *tlsNode {
	t.Helper()
	dir := t.TempDir()
	n := &tlsNode{
		Name:     "warren-tls-" + tlsRandHex(t, 4) + "@localhost",
		TLSPort:  tlsFreePort(t),
		User:     user,
		Password: password,
		dir:      dir,
		log:      filepath.Join(dir, "node.out"),
	}
	plainPort, distPort := tlsFreePort(t), tlsFreePort(t)
	conf := fmt.Sprintf(`listeners.tcp.1 = 127.0.0.1:%d
listeners.ssl.1 = 127.0.0.1:%d
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
default_user = %s
default_pass = %s
log.console = true
log.console.level = warning
log.file = false
`, plainPort, n.TLSPort, pki.CA, pki.ServerCert, pki.ServerKey, user, password)
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"rabbitmq-env.conf": "", // instead of /etc/rabbitmq's, which names the shared node
		"enabled_plugins":   "[].\n",
		".erlang.cookie":    "WARRENTLS" + strings.ToUpper(tlsRandHex(t, 8)),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o400); err != nil {
			t.Fatal(err)
		}
	}

	out, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	// The foreground form in a child process: its exit is seen at once, and
	// its process group can be killed if a clean stop fails.
	cmd := exec.Command(tlsRabbitBin(t, "rabbitmq-server"))
	cmd.Dir = dir
	cmd.Env = append(n.env(),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "node.pid"),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", distPort),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = out.Close() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if o, err := n.ctl(ctx, "stop"); err != nil {
			t.Logf("rabbitmqctl -n %s stop: %v\n%s", n.Name, err, o)
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Logf("node %s did not stop; killing its process group", n.Name)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	// Up when the TLS port accepts and the node says it has booted.
	deadline := time.Now().Add(120 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("node %s exited during boot: %v\n%s", n.Name, err, n.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not up after 120s\n%s", n.Name, n.output())
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.TLSPort), time.Second); err == nil {
			_ = c.Close()
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if o, err := n.ctl(ctx, "await_startup"); err != nil {
		t.Fatalf("rabbitmqctl -n %s await_startup: %v\n%s\n%s", n.Name, err, o, n.output())
	}
	return n
}

// env is what both the node and rabbitmqctl need to find each other: the
// node name, and a HOME holding the node's own Erlang cookie.
func (n *tlsNode) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RABBITMQ_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+n.dir, "RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(n.dir, "rabbitmq-env.conf"))
}

// ctl runs rabbitmqctl against this node only.
func (n *tlsNode) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tlsRabbitBinPath("rabbitmqctl"), append([]string{"-n", n.Name}, args...)...)
	cmd.Dir = n.dir
	cmd.Env = n.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// rabbitBinPath is rabbitBin for cleanup paths, where a missing script was
// already reported at start.
func tlsRabbitBinPath(name string) string {
	if p := filepath.Join("/usr/lib/rabbitmq/bin", name); tlsFileExists(p) {
		return p
	}
	return name
}

// output is the tail of the node's console, for failure messages.
func (n *tlsNode) output() string {
	b, _ := os.ReadFile(n.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
