package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// sample is one reading of the worker.
type sample struct {
	At         time.Time
	Handled    float64 // warren_tasks_processed_total, all outcomes
	Success    float64 // outcome="success"
	RSS        float64 // MiB, VmRSS of the worker process
	Heap       float64 // MiB, go_memstats_heap_inuse_bytes
	Goroutines float64
}

// vmRSS returns the resident set of process pid in MiB, from
// /proc/<pid>/status ("self" for this process).
func vmRSS(pid string) (float64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%s/status has no VmRSS", pid)
}

// probe reads the worker's /metrics at addr and its VmRSS.
func probe(addr string, pid int) (sample, error) {
	s := sample{At: time.Now()}
	rss, err := vmRSS(strconv.Itoa(pid))
	if err != nil {
		return s, err
	}
	s.RSS = rss
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, labels, value, ok := parseLine(line)
		if !ok {
			continue
		}
		switch name {
		case "warren_tasks_processed_total":
			s.Handled += value
			if strings.Contains(labels, `outcome="success"`) {
				s.Success += value
			}
		case "go_goroutines":
			s.Goroutines = value
		case "go_memstats_heap_inuse_bytes":
			s.Heap = value / (1 << 20)
		}
	}
	return s, nil
}

// parseLine splits one sample line of the Prometheus text format into
// name, label text and value; comments and blank lines are not samples.
func parseLine(line string) (name, labels string, value float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", "", 0, false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", "", 0, false
	}
	name = line[:sp]
	if i := strings.IndexByte(name, '{'); i >= 0 {
		name, labels = name[:i], name[i:]
	}
	return name, labels, v, true
}

// ready reports whether the worker's /readyz says it is consuming.
func ready(addr string) bool {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}
