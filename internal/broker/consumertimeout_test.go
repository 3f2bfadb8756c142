package broker

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestConsumerTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *amqp.Error
		want time.Duration
		ok   bool
	}{
		{"rabbitmq 3.10", &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. Timeout value used: 3000 ms. This timeout value can be configured, see consumers doc guide to learn more"}, 3 * time.Second, true},
		{"rabbitmq 3.8", &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - consumer ack timed out on channel 1"}, 0, true},
		{"no value named", &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out"}, 0, true},
		{"other precondition", &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"}, 0, false},
		{"other code", &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - delivery acknowledgement timed out"}, 0, false},
		{"nil", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := consumerTimeout(tc.err)
			if got != tc.want || ok != tc.ok {
				t.Errorf("consumerTimeout = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
