#!/usr/bin/python3
"""Publish one process_media task with Kombu, as a Python producer would.

Used by examples/media/interop_test.go; docs/protocol.md quotes
publish_plain and publish_warren.

    kombu_publish.py --url amqp://guest:guest@127.0.0.1:5672// \
        --exchange media --key video --queue video \
        --body '{"name": "/tmp/lolcat1.avi", "size": 1301013}' \
        [--task process_media [--id <uuid>]]

Without --task: publish_plain, no warren headers at all; the queue's default
task runs it. With --task: publish_warren, with warren's headers. Both
declare the exchange, the queue and the binding exactly as Kombu's
documentation does, publish with publisher confirms and mandatory, and the
script exits 1 if the broker refused, nacked or returned the message.
"""

import argparse
import json
import sys
import time
import uuid

from kombu import Connection, Exchange, Producer, Queue


# --- quoted in docs/protocol.md: begin ---
def connect(url):
    # confirm_publish: every publish waits for the broker's confirm (a nack
    # raises MessageNacked).
    return Connection(url, transport_options={"confirm_publish": True})


def publish_plain(conn, exchange, key, queue, payload):
    """The minimal version: no warren headers; the queue's default task runs it."""
    media = Exchange(exchange, "direct")  # durable, no arguments
    video = Queue(queue, media, routing_key=key)  # durable, no arguments
    Producer(conn).publish(
        payload,  # a dict: Kombu sends JSON, content_type application/json
        exchange=media,
        routing_key=key,
        declare=[video],
        mandatory=True,  # unroutable: py-amqp raises (no on_return callback)
        timeout=30,  # seconds to wait for the confirm
    )  # delivery_mode defaults to 2 (persistent)


def publish_warren(conn, exchange, key, queue, payload, task, task_id=None):
    """With warren's headers: the task name and its id. Returns the id."""
    task_id = task_id or str(uuid.uuid4())
    media = Exchange(exchange, "direct")
    video = Queue(queue, media, routing_key=key)
    Producer(conn).publish(
        payload,
        exchange=media,
        routing_key=key,
        declare=[video],
        mandatory=True,
        timeout=30,
        headers={"task": task, "id": task_id},
        message_id=task_id,
        timestamp=int(time.time()),  # unix seconds; py-amqp wants an int
    )
    return task_id
# --- quoted in docs/protocol.md: end ---


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="Kombu broker URL (vhost / is //)")
    ap.add_argument("--exchange", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--body", required=True, help="the payload, as JSON")
    ap.add_argument("--task", help="warren's task header; omit for the plain version")
    ap.add_argument("--id", help="task id (header id and message_id); default a new UUID")
    args = ap.parse_args()

    payload = json.loads(args.body)
    with connect(args.url) as conn:
        conn.ensure_connection(max_retries=3)
        if args.task:
            task_id = publish_warren(conn, args.exchange, args.key, args.queue,
                                     payload, args.task, args.id)
            print("published", task_id)
        else:
            publish_plain(conn, args.exchange, args.key, args.queue, payload)
            print("published")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report on stderr, fail the caller
        print(f"kombu_publish: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
