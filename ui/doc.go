// Package ui is warren's web UI for operators: an http.Handler that shows
// the work queues (depths, consumers, rates), the next messages of a queue,
// dead letters with why they died, the live workers and what they run, and
// finds a task by id; and that purges a queue and replays or deletes dead
// letters, after a confirmation.
//
// It is built on the public packages inspect and deadletter only, as the
// warren CLI is, and renders HTML on the server with html/template, so
// every payload it shows is escaped text. Its CSS and its little
// JavaScript are embedded in the binary: nothing is fetched from the
// network. `warren ui` serves it alone; a program can mount it in its own
// server under a path prefix with http.StripPrefix (see the example).
//
// Every action is a POST, refused when it comes from another site
// (http.CrossOriginProtection) and, in read-only mode, refused outright.
// A peek at ready messages (the queue page's, and a task lookup's search
// of them) is a delivery, so it is such a POST too: no GET takes a ready
// message. Basic authentication is an option of Config; without it the UI
// answers only IP addresses, localhost and Config.Hosts, against DNS
// rebinding.
package ui
