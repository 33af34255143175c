package audit

import (
	"strings"
	"testing"
)

func TestReadIgnoresOnlyATornLastLine(t *testing.T) {
	good := `{"t":1,"inst":"ha1","epoch":2,"op":"lease"}` + "\n" + `{"t":3,"inst":"ha1","epoch":2,"op":"write","path":"a.part","n":5}` + "\n"
	recs, err := Read(strings.NewReader(good + `{"t":4,"inst":"ha1","ep`))
	if err != nil || len(recs) != 2 || recs[1].Op != OpWrite || recs[1].N != 5 {
		t.Fatalf("torn last line: %+v, %v", recs, err)
	}
	if _, err := Read(strings.NewReader(`{"t":4,"in` + "\n" + good)); err == nil {
		t.Fatal("a malformed line before the last was accepted")
	}
}
