// Package warrentest helps warren's users test their own tasks, as
// River's rivertest does for River: the code that enqueues them, the
// handlers that run them, and both together on a real worker.
//
//   - Code that enqueues takes the *producer.Producer it takes in
//     production; the test gives it one (NewProducer) routed to a queue of
//     the test's own (Broker.Queue) and asserts on what arrived there
//     (Broker.Record, RequireEnqueued): the payload, decoded to its type,
//     and the options (delay, expiry, priority, headers, id). The task went
//     through the real producer and broker, confirms included.
//   - A handler runs on a payload as a worker would run it (Work), with no
//     broker: the task's deadline on its context, the attempt count in its
//     message, and the verdict the worker's own decision code reaches
//     (success, retry after a delay, dead with a reason).
//   - End to end, StartWorker runs a real worker on the test's queues and
//     stops it when the test ends; Context and Eventually bound each step,
//     so tests wait on conditions rather than sleep.
//
// The broker is RabbitMQ at DefaultURL unless EnvURL names another. A test
// that needs it is skipped when none answers, and fails instead when the
// CI variable is set. Every queue and exchange a Broker names is the
// test's alone and deleted when it ends, so tests may run in parallel.
package warrentest
