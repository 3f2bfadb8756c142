// Package retry holds warren's delay arithmetic: capped exponential backoff
// with jitter. The broker layer uses it between reconnects; task retry
// policies build on it. It imports nothing of warren's and knows no AMQP.
package retry
