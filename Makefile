# Targets named in README.md. Each is a thin wrapper over scripts/.
.PHONY: demo test lint build

demo: ## run the media example end to end on a local RabbitMQ
	scripts/demo.sh

test: ## the test command CI runs
	scripts/test.sh

lint: ## gofmt and go vet, including the fault suite's build tag
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	go vet ./...
	go vet -tags fault ./...

build: ## the worker and the example producer, into bin/
	go build -o bin/worker ./cmd/worker
	go build -o bin/enqueue ./examples/media/enqueue
