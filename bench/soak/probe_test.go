package main

import "testing"

func TestParseLine(t *testing.T) {
	cases := []struct {
		line, name, labels string
		value              float64
		ok                 bool
	}{
		{`warren_tasks_processed_total{outcome="success",queue="q",task="t"} 1234`, "warren_tasks_processed_total", `{outcome="success",queue="q",task="t"}`, 1234, true},
		{`go_goroutines 41`, "go_goroutines", "", 41, true},
		{`go_memstats_heap_inuse_bytes 8.3968e+06`, "go_memstats_heap_inuse_bytes", "", 8.3968e+06, true},
		{`# TYPE go_goroutines gauge`, "", "", 0, false},
		{``, "", "", 0, false},
		{`broken`, "", "", 0, false},
	}
	for _, c := range cases {
		name, labels, value, ok := parseLine(c.line)
		if name != c.name || labels != c.labels || value != c.value || ok != c.ok {
			t.Errorf("parseLine(%q) = %q, %q, %v, %v", c.line, name, labels, value, ok)
		}
	}
}

func TestVmRSS(t *testing.T) {
	mib, err := vmRSS("self")
	if err != nil {
		t.Fatal(err)
	}
	if mib < 1 || mib > 1<<16 {
		t.Errorf("VmRSS of this test process = %.1f MiB", mib)
	}
}
