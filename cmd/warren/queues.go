package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/warrenq/warren/inspect"
)

const queuesSynopsis = "[-json] [-all] [-management URL|none] [QUEUE...]"

// Sources of a queues report.
const (
	sourceManagement = inspect.SourceManagement
	sourceAMQP       = inspect.SourceAMQP
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
	cfg := inspect.Config{Management: *mgmtURL}
	if *mgmtURL == "none" {
		cfg = inspect.Config{NoManagement: true}
	}
	insp, err := o.inspector(cfg)
	if err != nil {
		return err
	}
	defer insp.Close()
	got, err := insp.Queues(ctx, inspect.Filter{Names: names, All: *all})
	rep := queuesReport{Source: got.Source, Management: got.Management, Vhost: got.Vhost}
	if got.ManagementErr != nil {
		rep.ManagementError = got.ManagementErr.Error()
	}
	switch {
	case errors.Is(err, inspect.ErrNeedsManagement) && cfg.NoManagement:
		return o.usagef("AMQP cannot list queues and -management none turns the management API off: name the queues, e.g. warren queues video audio")
	case errors.Is(err, inspect.ErrNeedsManagement):
		// The same command works once the plugin answers: a failure,
		// not a usage error.
		return fmt.Errorf("the management API at %s did not answer (%s), and AMQP cannot list queues: enable the plugin (rabbitmq-plugins enable rabbitmq_management), point -management at it, or name the queues, e.g. warren queues video audio",
			rep.Management, rep.ManagementError)
	case err != nil:
		return o.connErr(err)
	}
	rep.Queues = []queueRow{}
	failed := 0
	for _, q := range got.Queues {
		r := queueRow{Name: q.Name, Ready: q.Ready, Unacked: q.Unacked, Consumers: q.Consumers, Dead: q.Dead,
			PublishRate: q.PublishRate, DeliverRate: q.DeliverRate}
		if q.Source == sourceAMQP && rep.Source == sourceManagement {
			r.CountsFrom = sourceAMQP
		}
		if q.Missing {
			r = queueRow{Name: q.Name, Error: missing(q.Name)}
			failed++
			fmt.Fprintf(e.stderr, "warren queues: %s\n", r.Error)
		}
		rep.Queues = append(rep.Queues, r)
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

func missing(q string) string {
	return fmt.Sprintf("queue %q does not exist: check the name (a worker declares its queues when it starts)", q)
}

func printQueues(e *env, rep *queuesReport) error {
	switch {
	case rep.Source == sourceManagement:
		fmt.Fprintf(e.stdout, "source: management API at %s (vhost %s)\n", rep.Management, rep.Vhost)
	case rep.ManagementError != "":
		fmt.Fprintf(e.stdout, "source: AMQP passive declares, ready and consumers only; unacked counts and rates come from the management plugin, not reachable at %s (%s)\n", rep.Management, rep.ManagementError)
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
