package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BrokerTime returns the broker's clock, to the second. AMQP carries no
// time of the broker's, but dead-lettering stamps one: a probe published
// into a queue of its own with a message TTL of 0 is dead-lettered at once
// into another, and the x-death header the broker adds holds the time it
// did so. Both queues are exclusive and server-named, deleted when done,
// and else by the broker a minute after (x-expires) or with the connection.
func (s *Supervisor) BrokerTime(ctx context.Context) (time.Time, error) {
	return onChannelValue(ctx, s, func(ch *amqp.Channel) (time.Time, error) {
		back, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{"x-expires": int32(60000)})
		if err != nil {
			return time.Time{}, err
		}
		defer func() { _, _ = ch.QueueDelete(back.Name, false, false, false) }()
		probe, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{
			"x-message-ttl": int32(0), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": back.Name, "x-expires": int32(60000),
		})
		if err != nil {
			return time.Time{}, err
		}
		defer func() { _, _ = ch.QueueDelete(probe.Name, false, false, false) }()
		if err := ch.PublishWithContext(ctx, "", probe.Name, false, false, amqp.Publishing{}); err != nil {
			return time.Time{}, err
		}
		for {
			d, ok, err := ch.Get(back.Name, true)
			if err != nil {
				return time.Time{}, err
			}
			if ok {
				return deathTime(d.Headers)
			}
			select {
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
}

// deathTime reads the time of the first x-death entry.
func deathTime(h amqp.Table) (time.Time, error) {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return time.Time{}, errors.New("broker clock probe: no x-death header")
	}
	death, _ := deaths[0].(amqp.Table)
	t, ok := death["time"].(time.Time)
	if !ok {
		return time.Time{}, fmt.Errorf("broker clock probe: x-death carries no time: %v", death)
	}
	return t, nil
}
