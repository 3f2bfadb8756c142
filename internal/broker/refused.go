package broker

import (
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"
)

// LoginRefused reports whether err shows that the broker refused the
// user or password: amqp091-go's ErrCredentials, or a connection closed
// with 403 ACCESS_REFUSED. No re-dial cures it. RabbitMQ answers a wrong
// password only after about three seconds, and amqp091-go reports a
// handshake cut short after the credentials were sent the same way, so a
// dial timeout shorter than that reads as a refusal too: the broker took
// the connection and did not take the login.
func LoginRefused(err error) bool {
	if errors.Is(err, amqp.ErrCredentials) {
		return true
	}
	if VhostRefused(err) { // amqp091-go's ErrVhost is a 403 too
		return false
	}
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.AccessRefused
}

// VhostRefused reports whether err shows that the broker refused the
// connection's vhost (530 NOT_ALLOWED on connection.open): it does not
// exist, or the user has no access to it.
func VhostRefused(err error) bool {
	if errors.Is(err, amqp.ErrVhost) {
		return true
	}
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotAllowed
}
