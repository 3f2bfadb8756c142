// Package conn is how every warren component reaches RabbitMQ: one Config
// (broker URL, TLS, heartbeat, logger, metrics) that producer, worker,
// deadletter, result and inspect all take, the one DefaultURL, and the
// errors a broker's answers become, which callers test with errors.Is
// whichever component returned them. Redact and URLFlag keep a broker
// URL's password out of logs, errors and flag output; CheckURL says what is
// wrong with a broker URL before any dial. It imports nothing
// of warren's and knows no AMQP client: internal/broker applies the
// Config.
package conn
