package ui_test

import (
	"log"
	"net/http"

	"github.com/warrenq/warren/conn"
	"github.com/warrenq/warren/deadletter"
	"github.com/warrenq/warren/inspect"
	"github.com/warrenq/warren/ui"
)

// The UI mounted under /warren/ in a program's own server, read-only and
// behind basic authentication. http.StripPrefix takes the prefix off the
// path; the UI's links keep it.
func Example_mount() {
	broker := conn.Config{URL: "amqp://guest:guest@127.0.0.1:5672/"}
	insp, err := inspect.New(inspect.Config{Conn: broker})
	if err != nil {
		log.Fatal(err)
	}
	defer insp.Close()
	dl, err := deadletter.New(deadletter.Config{Conn: broker})
	if err != nil {
		log.Fatal(err)
	}
	defer dl.Close()

	h, err := ui.New(ui.Config{
		Inspector:   insp,
		DeadLetters: dl,
		Queues:      []string{"video"}, // shown even with no worker and no management API
		ReadOnly:    true,
		User:        "ops",
		Password:    "from a secret, not the source",
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/warren/", http.StripPrefix("/warren", h))
	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: mux}
	_ = srv // srv.ListenAndServe() serves it, next to the program's own handlers
}
