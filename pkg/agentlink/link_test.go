package agentlink

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// A streamed request whose answer never comes (the other agent's link
// drops packets, or its instance hangs) is abandoned after StallAfter as
// unreachable, so that the loss of the group begins to count; one whose
// answer comes is not.
func TestStreamAbandonedWhenStalled(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	c, err := client.New([]string{srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	l := New("PAYMENTS", c)
	l.StallAfter = 300 * time.Millisecond
	ref := transfer.InboundRef{Agent: "ORDERS", ID: "t1", Epoch: 3}
	began := time.Now()
	_, err = l.SendFiles(context.Background(), ref, false, func(emit func(transfer.FileFrame, []byte) error) error {
		return emit(transfer.FileFrame{Path: "a", Size: 1}, []byte("x"))
	})
	took := time.Since(began)
	if !errors.Is(err, transfer.ErrAgentUnreachable) {
		t.Fatalf("a stalled request: %v, want ErrAgentUnreachable", err)
	}
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("abandoned after %v, want about 300ms", took)
	}
	// The abandoned request counts as a failure to reach the group.
	if _, last := l.Silent(); last.IsZero() {
		t.Error("the abandoned request was not counted as unreachable (Silent has no failure)")
	}
}

// A body that keeps moving is never abandoned, however long it takes.
func TestStreamKeptWhileMoving(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"files":[{"path":"a"}]}`))
	}))
	defer srv.Close()
	c, err := client.New([]string{srv.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	l := New("PAYMENTS", c)
	l.StallAfter = 200 * time.Millisecond
	res, err := l.SendFiles(context.Background(), transfer.InboundRef{Agent: "ORDERS", ID: "t1", Epoch: 3}, false, func(emit func(transfer.FileFrame, []byte) error) error {
		for i := 0; i < 8; i++ { // 800 ms in all, 100 ms between writes
			time.Sleep(100 * time.Millisecond)
			if err := emit(transfer.FileFrame{Path: "a", Size: 1}, []byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(res) != 1 {
		t.Fatalf("a slow but moving request: %v %v", res, err)
	}
}
