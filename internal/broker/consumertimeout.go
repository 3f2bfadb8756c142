package broker

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// timeoutUsed finds the value RabbitMQ names when it closes a channel whose
// delivery stayed unacked past its consumer_timeout: "PRECONDITION_FAILED -
// delivery acknowledgement on channel 1 timed out. Timeout value used:
// 1800000 ms. ..." (3.10 to at least 3.13; 3.8 said "consumer ack timed
// out on channel N" and named no value).
var timeoutUsed = regexp.MustCompile(`Timeout value used: (\d+) ms`)

// consumerTimeout reports whether err is the broker closing a channel for
// its consumer_timeout, and the timeout it names (zero when it names none).
func consumerTimeout(err *amqp.Error) (time.Duration, bool) {
	if err == nil || err.Code != amqp.PreconditionFailed || !strings.Contains(err.Reason, "timed out") ||
		!(strings.Contains(err.Reason, "delivery acknowledgement") || strings.Contains(err.Reason, "ack timed out")) {
		return 0, false
	}
	m := timeoutUsed.FindStringSubmatch(err.Reason)
	if m == nil {
		return 0, true
	}
	ms, perr := strconv.ParseInt(m[1], 10, 64)
	if perr != nil {
		return 0, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// OnConsumerTimeout makes the consumer call f, from its own goroutine, each
// time the broker closes its channel because a delivery stayed unacked
// longer than the broker's consumer_timeout; f gets the timeout the broker
// named (zero if it named none). Every delivery unacked on that channel is
// requeued by the broker and their acks are stale. Call before Run.
func (c *Consumer) OnConsumerTimeout(f func(timeout time.Duration)) { c.onTimeout = f }
