// Package task defines what a warren task is: a name plus a typed payload
// (Def), the envelope that travels on the wire (Message), the codecs that
// turn payloads into bodies, and the Registry that maps task names to
// handlers.
//
// It sits at both ends of a task's trip: the producer encodes a payload with
// a Def, and the worker looks the Message's task name up in a Registry,
// decodes the body into the same payload type and runs the handler. It knows
// nothing of AMQP.
package task
