package ui

import "testing"

func TestUnescapeHTML(t *testing.T) {
	for in, want := range map[string]string{
		`"\u003cscript\u003e a \u0026 b"`: `"<script> a & b"`,
		`"\\u003c"`:                       `"\\u003c"`, // a backslash, then the text u003c
		`"\\\u003c"`:                      `"\\<"`,
		`"\u00e9 \n"`:                     `"\u00e9 \n"`,
		`plain`:                           `plain`,
		`ends with \`:                     `ends with \`,
	} {
		if got := unescapeHTML(in); got != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestShowBody(t *testing.T) {
	long := make([]byte, maxText+100)
	for i := range long {
		long[i] = 'a'
	}
	for _, c := range []struct {
		name   string
		in     []byte
		text   string
		binary bool
		cut    bool
	}{
		{"json indented", []byte(`{"a":1}`), "{\n  \"a\": 1\n}", false, false},
		{"text", []byte("hello\nworld"), "hello\nworld", false, false},
		{"binary", []byte{0, 1, 2}, "00000000  00 01 02                                          |...|\n", true, false},
		{"long", long, string(long[:maxText]), false, true},
	} {
		got := showBody(c.in)
		if got.Text != c.text || got.Binary != c.binary || got.Cut != c.cut || got.Size != len(c.in) {
			t.Errorf("%s: got %+v", c.name, got)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0 dead letters", 1: "1 dead letter", 2: "2 dead letters"} {
		if got := count(n, "dead letter"); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
