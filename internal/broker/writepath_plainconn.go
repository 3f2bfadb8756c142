//go:build warren_plainconn

package broker

// coalesceWrites is off: amqp091-go writes to the socket itself.
const coalesceWrites = false
