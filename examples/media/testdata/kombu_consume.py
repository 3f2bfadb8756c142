#!/usr/bin/python3
"""Read one message from a queue with Kombu, as a plain consumer would, ack
it, and print what it saw as one JSON object on stdout:

    {"body": <raw body as text>, "payload": <body decoded by Kombu>,
     "content_type": ..., "content_encoding": ..., "delivery_mode": ...,
     "message_id": ..., "timestamp": <unix seconds or null>,
     "priority": ..., "headers": {...}}

Used by examples/media/interop_test.go to show that a message enqueued by
warren is ordinary AMQP; docs/protocol.md quotes read_one.

    kombu_consume.py --url amqp://guest:guest@127.0.0.1:5672// --queue q \
        [--exchange x --key k] [--timeout 30]

With --exchange and --key the queue is declared (and bound) as Kombu's
documentation declares it; without them it is not declared at all.
Exits 2 if no message arrives within the timeout.
"""

import argparse
import json
import socket
import sys
import time

from kombu import Connection, Consumer, Exchange, Queue


# --- quoted in docs/protocol.md: begin ---
def read_one(conn, queue, timeout):
    """Take one message from queue (a kombu.Queue), ack it, return what it carried."""
    seen = []

    def on_message(payload, message):  # payload: the body decoded by content_type
        props = message.properties
        seen.append({
            "body": message.body.decode("utf-8"),
            "payload": payload,
            "content_type": message.content_type,
            "content_encoding": message.content_encoding,
            "delivery_mode": props.get("delivery_mode"),
            "message_id": props.get("message_id"),
            "timestamp": props.get("timestamp"),  # unix seconds
            "priority": props.get("priority"),
            "headers": message.headers,  # task, id, ...
        })
        message.ack()

    deadline = time.monotonic() + timeout
    with Consumer(conn, queues=[queue], callbacks=[on_message],
                  accept=["application/json"], prefetch_count=1):
        while not seen:  # drain_events returns after any one method frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"no message within {timeout}s")
            conn.drain_events(timeout=left)  # socket.timeout if none comes
    return seen[0]
# --- quoted in docs/protocol.md: end ---


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="Kombu broker URL (vhost / is //)")
    ap.add_argument("--queue", required=True)
    ap.add_argument("--exchange")
    ap.add_argument("--key")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    if args.exchange:
        queue = Queue(args.queue, Exchange(args.exchange, "direct"), routing_key=args.key)
    else:
        queue = Queue(args.queue, no_declare=True)
    with Connection(args.url, connect_timeout=args.timeout) as conn:
        try:
            seen = read_one(conn, queue, args.timeout)
        except socket.timeout:
            print(f"kombu_consume: no message on {args.queue} within {args.timeout}s",
                  file=sys.stderr)
            sys.exit(2)
    print(json.dumps(seen, default=str))


if __name__ == "__main__":
    main()
