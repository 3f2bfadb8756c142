package main

import (
	"strings"

	"github.com/warrenq/warren/conn"
)

// On a cluster (-broker lists its nodes) producers connect to the first
// node and consumers to the second, so that every task crosses nodes as it
// does in production, where producers and workers land on whichever node
// a dial reaches; warren's clients get the whole list, starting there, as
// a user would give it.

// nodes are the broker URLs -broker lists: one, or a cluster's nodes.
func nodes(p params) []string {
	if ns := conn.SplitURLs(p.URL); len(ns) > 0 {
		return ns
	}
	return []string{p.URL}
}

// node returns the URL of node i, counting round the list.
func node(p params, i int) string {
	ns := nodes(p)
	return ns[i%len(ns)]
}

// publishNode and consumeNode are where producers and consumers connect.
func publishNode(p params) string { return node(p, 0) }
func consumeNode(p params) string { return node(p, 1) }

// listFrom is the node list starting at node i, for a warren client.
func listFrom(p params, i int) string {
	ns := nodes(p)
	i %= len(ns)
	return strings.Join(append(append([]string{}, ns[i:]...), ns[:i]...), ",")
}
