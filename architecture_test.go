package warren_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// AMQP lives in one room (docs/architecture.md): among the module's
// packages only internal/broker, its test kit and the bench's raw baseline
// import amqp091-go, and the library's packages import no program or
// example.
func TestAMQPIsImportedOnlyByTheBroker(t *testing.T) {
	const module = "github.com/warrenq/warren"
	allowed := map[string]bool{
		module + "/internal/broker":            true,
		module + "/internal/broker/brokertest": true,
		module + "/bench":                      true,
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	seen := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg, imports := f[0], f[1:]
		seen++
		for _, imp := range imports {
			if imp == "github.com/rabbitmq/amqp091-go" && !allowed[pkg] {
				t.Errorf("%s imports amqp091-go; only internal/broker may speak AMQP", pkg)
			}
			if !isProgram(module, pkg) && isProgram(module, imp) {
				t.Errorf("%s imports the program or example %s", pkg, imp)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("go list named %d packages; it should list the whole module", seen)
	}
}

func isProgram(module, pkg string) bool {
	for _, dir := range []string{"/cmd/", "/examples/", "/bench"} {
		if strings.HasPrefix(pkg, module+dir) {
			return true
		}
	}
	return false
}
