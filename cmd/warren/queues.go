package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/warrenq/warren/internal/broker"
	"github.com/warrenq/warren/routing"
)

const queuesSynopsis = "[-json] [-all] [-management URL|none] [QUEUE...]"

// Sources of a queues report.
const (
	sourceManagement = "management"
	sourceAMQP       = "amqp"
)

// queuesReport is the output of "warren queues", also as JSON.
type queuesReport struct {
	// Source is "management" (the management HTTP API: every column) or
	// "amqp" (passive declares: ready and consumers only).
	Source          string     `json:"source"`
	Management      string     `json:"management_url,omitempty"`
	ManagementError string     `json:"management_error,omitempty"`
	Vhost           string     `json:"vhost,omitempty"`
	Queues          []queueRow `json:"queues"`
}

// queueRow is one queue. A nil field is not known from the source.
type queueRow struct {
	Name        string   `json:"name"`
	Ready       int      `json:"ready"`
	Unacked     *int     `json:"unacked"`
	Consumers   int      `json:"consumers"`
	Dead        *int     `json:"dead"` // ready messages of <name>.dead; nil if it has none
	PublishRate *float64 `json:"publish_rate"`
	DeliverRate *float64 `json:"deliver_rate"` // deliveries and basic.gets per second
	// CountsFrom is "amqp" when the management API had no statistics for
	// the queue yet and ready and consumers come from a passive declare.
	CountsFrom string `json:"counts_from,omitempty"`
	Error      string `json:"error,omitempty"`

	needCounts, needDead bool // the management API left them out
}

func runQueues(ctx context.Context, e *env, args []string) error {
	fs, o := e.flagSet("queues", queuesSynopsis, true)
	all := fs.Bool("all", false, "with the management API: every queue of the vhost, not only warren's work queues")
	mgmtURL := fs.String("management", "", "management API URL (default: http://BROKER-HOST:15672, with the broker's credentials); none: AMQP only")
	names, err := o.parse(fs, args)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == "" {
			return o.usagef("a queue name is empty")
		}
	}

	rep := queuesReport{}
	if *mgmtURL != "none" {
		m, err := newManagement(o.broker, *mgmtURL, o.tls)
		if err != nil {
			return o.usagef("%v", err)
		}
		rep.Management, rep.Vhost = m.base, m.vhost
		cctx, cancel := o.call(ctx)
		qs, err := m.queues(cctx)
		cancel()
		if err == nil {
			rep.Source = sourceManagement
			rep.Queues = fromManagement(qs, names, *all)
			if err := fillFromAMQP(ctx, o, rep.Queues); err != nil {
				return err
			}
		} else {
			rep.ManagementError = err.Error()
		}
	}
	if rep.Source == "" {
		if len(names) == 0 {
			if rep.ManagementError == "" {
				return o.usagef("AMQP cannot list queues and -management none turns the management API off: name the queues, e.g. warren queues video audio")
			}
			// The same command works once the plugin answers: a failure,
			// not a usage error.
			return fmt.Errorf("the management API at %s did not answer (%s), and AMQP cannot list queues: enable the plugin (rabbitmq-plugins enable rabbitmq_management), point -management at it, or name the queues, e.g. warren queues video audio",
				rep.Management, rep.ManagementError)
		}
		rep.Source = sourceAMQP
		rep.Queues, err = fromPassive(ctx, o, names)
		if err != nil {
			return err
		}
	}

	failed := 0
	for _, q := range rep.Queues {
		if q.Error != "" {
			failed++
			fmt.Fprintf(e.stderr, "warren queues: %s\n", q.Error)
		}
	}
	if o.json {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else if err := printQueues(e, &rep); err != nil {
		return err
	}
	if failed > 0 {
		return errReported
	}
	return nil
}

// fromManagement picks the rows: the named queues, or every work queue
// (a queue with a <name>.dead beside it, not warren.* or *.dead itself),
// or with all every queue.
func fromManagement(qs []mgmtQueue, names []string, all bool) []queueRow {
	byName := make(map[string]*mgmtQueue, len(qs))
	for i := range qs {
		byName[qs[i].Name] = &qs[i]
	}
	row := func(q *mgmtQueue) queueRow {
		r := queueRow{Name: q.Name}
		if q.Ready == nil || q.Consumers == nil {
			r.needCounts = true
		} else {
			r.Ready, r.Consumers, r.Unacked = *q.Ready, *q.Consumers, q.Unacked
			// With statistics, a rate the API leaves out is one with
			// nothing to count since the plugin started: zero.
			pub, del := 0.0, 0.0
			if q.Stats.Publish != nil {
				pub = q.Stats.Publish.Rate
			}
			if q.Stats.DeliverGet != nil {
				del = q.Stats.DeliverGet.Rate
			}
			r.PublishRate, r.DeliverRate = &pub, &del
		}
		if d, ok := byName[routing.DeadQueue(q.Name)]; ok {
			if d.Ready != nil {
				r.Dead = d.Ready
			} else {
				r.needDead = true
			}
		}
		return r
	}
	rows := []queueRow{}
	if len(names) > 0 {
		for _, n := range names {
			q, ok := byName[n]
			if !ok {
				rows = append(rows, queueRow{Name: n, Error: missing(n)})
				continue
			}
			rows = append(rows, row(q))
		}
		return rows
	}
	for i := range qs {
		q := &qs[i]
		if !all {
			if strings.HasPrefix(q.Name, "warren.") || strings.HasSuffix(q.Name, routing.DeadSuffix) {
				continue
			}
			if _, ok := byName[routing.DeadQueue(q.Name)]; !ok {
				continue
			}
		}
		rows = append(rows, row(q))
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows
}

// fillFromAMQP completes, with passive declares, the rows whose counts the
// management API did not have yet. It connects only if one needs it.
func fillFromAMQP(ctx context.Context, o *opts, rows []queueRow) error {
	var sup *broker.Supervisor
	for i := range rows {
		r := &rows[i]
		if !r.needCounts && !r.needDead {
			continue
		}
		if sup == nil {
			var err error
			if sup, err = o.dial(ctx); err != nil {
				return fmt.Errorf("the management API has no statistics yet for queue %q, and AMQP: %w", r.Name, err)
			}
			defer sup.Close()
		}
		p, err := inspect(ctx, o, sup, r.Name)
		if err != nil {
			return err
		}
		if p.Error != "" { // deleted since the management API listed it
			r.Error = p.Error
			continue
		}
		if r.needCounts {
			r.Ready, r.Consumers, r.CountsFrom = p.Ready, p.Consumers, sourceAMQP
		}
		if r.needDead {
			r.Dead = p.Dead
		}
	}
	return nil
}

func missing(q string) string {
	return fmt.Sprintf("queue %q does not exist: check the name (a worker declares its queues when it starts)", q)
}

// fromPassive inspects the named queues and their dead-letter queues with
// passive declares.
func fromPassive(ctx context.Context, o *opts, names []string) ([]queueRow, error) {
	sup, err := o.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer sup.Close()
	rows := make([]queueRow, 0, len(names))
	for _, n := range names {
		r, err := inspect(ctx, o, sup, n)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// inspect reads queue n and its dead-letter queue with passive declares; a
// missing queue is a row with an error, any other failure an error.
func inspect(ctx context.Context, o *opts, sup *broker.Supervisor, n string) (queueRow, error) {
	cctx, cancel := o.call(ctx)
	defer cancel()
	st, err := sup.InspectQueue(cctx, n)
	if err != nil {
		if broker.IsNotFound(err) {
			return queueRow{Name: n, Error: missing(n)}, nil
		}
		return queueRow{}, fmt.Errorf("queue %q: %w", n, o.explain(err))
	}
	r := queueRow{Name: n, Ready: st.Ready, Consumers: st.Consumers}
	dst, err := sup.InspectQueue(cctx, routing.DeadQueue(n))
	switch {
	case err == nil:
		r.Dead = &dst.Ready
	case !broker.IsNotFound(err):
		return queueRow{}, fmt.Errorf("queue %q: %w", routing.DeadQueue(n), o.explain(err))
	}
	return r, nil
}

func printQueues(e *env, rep *queuesReport) error {
	switch {
	case rep.Source == sourceManagement:
		fmt.Fprintf(e.stdout, "source: management API at %s (vhost %s)\n", rep.Management, rep.Vhost)
	case rep.ManagementError != "":
		fmt.Fprintf(e.stdout, "source: AMQP passive declares, ready and consumers only (management API at %s: %s)\n", rep.Management, rep.ManagementError)
	default:
		fmt.Fprintln(e.stdout, "source: AMQP passive declares, ready and consumers only")
	}
	if len(rep.Queues) == 0 {
		_, err := fmt.Fprintln(e.stdout, "no warren work queues (a work queue has a <name>.dead queue beside it; -all shows every queue)")
		return err
	}
	var filled []string
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "QUEUE\tREADY\tUNACKED\tCONSUMERS\tDEAD\tPUBLISH/S\tDELIVER/S")
	for _, q := range rep.Queues {
		if q.Error != "" {
			continue // on stderr
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", q.Name, q.Ready, optInt(q.Unacked), q.Consumers, optInt(q.Dead), optRate(q.PublishRate), optRate(q.DeliverRate))
		if q.CountsFrom == sourceAMQP {
			filled = append(filled, q.Name)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(filled) > 0 {
		_, err := fmt.Fprintf(e.stdout, "ready and consumers of %s from passive declares: the management API has no statistics for them yet (it refreshes them every few seconds)\n", strings.Join(filled, ", "))
		return err
	}
	return nil
}

func optInt(p *int) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func optRate(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *p)
}
