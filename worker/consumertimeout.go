package worker

import (
	"sort"
	"time"

	"go.uber.org/zap"
)

// RabbitMQ closes a consumer's channel with PRECONDITION_FAILED when one of
// its deliveries stays unacked longer than the broker's consumer_timeout
// (RabbitMQ 3.8.15 and later), and requeues every delivery unacked on it.
// A handler that runs longer than that can never ack: each run ends with
// the task redelivered and run again, for ever. The worker therefore cuts a
// run a margin before the consumer_timeout when it knows the value
// (Config.ConsumerTimeout, or learned from the broker's first such close):
// the cut run fails like any timed-out run and follows the retry policy, so
// the task ends retried or dead-lettered. The run's deadline counts from
// when the worker received the delivery, as the broker's clock does. The
// cut is cooperative: a handler that ignores its context is not stopped,
// its channel is still closed and the task redelivered (a quorum queue's
// delivery-limit ends that). When the value is
// only assumed (RabbitMQ's default), the worker warns at start and does not
// cut: an operator may have raised it in rabbitmq.conf.

// RabbitMQDefaultConsumerTimeout is RabbitMQ's consumer_timeout unless
// rabbitmq.conf sets one: 30 minutes since 3.8.15.
const RabbitMQDefaultConsumerTimeout = 30 * time.Minute

// consumerTimeout returns the broker's consumer_timeout as far as the worker
// knows it, and whether it is known (configured or learned from the broker)
// rather than assumed. Zero means the broker has none.
func (w *Worker) consumerTimeout() (d time.Duration, known bool, source string) {
	learned := time.Duration(w.learnedTimeout.Load())
	cfg := w.cfg.ConsumerTimeout
	switch {
	case learned > 0 && (cfg <= 0 || learned < cfg):
		return learned, true, "learned from the broker"
	case cfg > 0:
		return cfg, true, "Config.ConsumerTimeout"
	case cfg < 0:
		return 0, true, "Config.ConsumerTimeout (none)"
	}
	return RabbitMQDefaultConsumerTimeout, false, "RabbitMQ's default, assumed"
}

// consumerTimeoutMargin is how long before the consumer_timeout a run is
// cut: enough to publish the retry copy, wait for its confirm and ack, and
// to cover the time a delivery waited before the worker saw it. A tenth of
// the timeout, at least a second (half the timeout when that is shorter),
// at most a minute.
func consumerTimeoutMargin(ct time.Duration) time.Duration {
	return min(max(ct/10, time.Second), ct/2, time.Minute)
}

// runLimit returns how long one run of a task with timeout taskTimeout (0:
// none) may take, and whether the limit comes from the consumer_timeout.
// Zero means no limit.
func (w *Worker) runLimit(taskTimeout time.Duration) (time.Duration, bool) {
	ct, known, _ := w.consumerTimeout()
	if !known || ct <= 0 {
		return taskTimeout, false
	}
	limit := ct - consumerTimeoutMargin(ct)
	if taskTimeout > 0 && taskTimeout <= limit {
		return taskTimeout, false
	}
	return limit, true
}

// consumerTimedOut is called when the broker closed queue's consumer
// channel for its consumer_timeout d (zero if it named none): the worker
// counts it and from now on cuts runs before d.
func (w *Worker) consumerTimedOut(queue string, d time.Duration) {
	w.consumerTimeouts.Add(1)
	if d > 0 {
		for {
			old := w.learnedTimeout.Load()
			if (old > 0 && int64(d) >= old) || w.learnedTimeout.CompareAndSwap(old, int64(d)) {
				break
			}
		}
	}
	limit, cut := w.runLimit(0)
	fields := []zap.Field{zap.String("queue", queue), zap.Duration("consumer_timeout", d)}
	if cut {
		fields = append(fields, zap.Duration("run_limit", limit))
	}
	w.log.Error("a delivery outlived the broker's consumer_timeout: the broker closed the channel and requeued its unacked tasks, "+
		"whose running handlers cannot ack any more. From now on runs are cut before it and fail into their retry policy; "+
		"raise consumer_timeout, lower the task's timeout or the prefetch (time waiting in the prefetch window counts too)", fields...)
}

// warnConsumerTimeout warns about every task whose timeout reaches the
// broker's consumer_timeout, known or assumed: such a run can never be
// acked.
func (w *Worker) warnConsumerTimeout() {
	ct, known, source := w.consumerTimeout()
	if ct <= 0 {
		return
	}
	names := w.cfg.Registry.Names()
	sort.Strings(names)
	for _, name := range names {
		to := w.cfg.Registry.Settings(name).Timeout
		if to <= ct-consumerTimeoutMargin(ct) {
			continue
		}
		fields := []zap.Field{zap.String("task", name), zap.Duration("task_timeout", to),
			zap.Duration("consumer_timeout", ct), zap.String("consumer_timeout_from", source)}
		if known {
			limit, _ := w.runLimit(to)
			w.log.Warn("task timeout exceeds the broker's consumer_timeout: its runs are cut earlier, at run_limit", append(fields, zap.Duration("run_limit", limit))...)
			continue
		}
		w.log.Warn("task timeout exceeds the broker's consumer_timeout (RabbitMQ's default unless rabbitmq.conf changes it): "+
			"a run that long has its channel closed and the task redelivered; set the worker's consumer timeout to the broker's value "+
			"so that runs are cut before it, or raise consumer_timeout", fields...)
	}
}
