package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// CreateTransfer submits a request with a fresh id; the client's retries
// (to another instance after a failover) carry the same id, so the agent
// creates the transfer once.
func CreateTransfer(ctx context.Context, cl *client.Client, req transfer.Request) (transfer.View, error) {
	return CreateTransferFiles(ctx, cl, req, transfer.FilesAll)
}

// CreateTransferFiles is CreateTransfer, answered with the files as files
// (QueryFiles) says: transfer.FilesNone when the caller does not need them.
func CreateTransferFiles(ctx context.Context, cl *client.Client, req transfer.Request, files string) (transfer.View, error) {
	var v transfer.View
	path := PathTransfers
	if files != "" && files != transfer.FilesAll {
		path += "?" + url.Values{QueryFiles: {files}}.Encode()
	}
	err := cl.Do(ctx, http.MethodPost, path, CreateTransferRequest{ID: transfer.NewID(), Request: req}, &v)
	return v, err
}

// GetTransfer returns one transfer as the active sees it.
func GetTransfer(ctx context.Context, cl *client.Client, id string) (transfer.View, error) {
	var v transfer.View
	err := cl.Do(ctx, http.MethodGet, PathTransfers+"/"+url.PathEscape(id), nil, &v)
	return v, err
}

// GetTransferWait returns one transfer once it has ended or wait has passed
// (QueryWait), with its files as files says (QueryFiles). An agent that
// does not know these parameters answers at once with every file.
func GetTransferWait(ctx context.Context, cl *client.Client, id, files string, wait time.Duration) (TransferBody, error) {
	var v TransferBody
	q := url.Values{QueryFiles: {files}}
	if wait > 0 {
		q.Set(QueryWait, wait.String())
	}
	err := cl.Do(ctx, http.MethodGet, PathTransfers+"/"+url.PathEscape(id)+"?"+q.Encode(), nil, &v)
	return v, err
}

// TransferBody is a transfer's view as the agent sent it, its files left
// as sent (Files; View.Files is nil): a caller that prints them as JSON
// need not decode them (tens of milliseconds for 10,000 files), and one
// that needs them calls Decode. Encoded, it is the View it stands for.
type TransferBody struct {
	transfer.View
	Files json.RawMessage `json:"files"`
}

// Decode returns the View with its files.
func (b TransferBody) Decode() (transfer.View, error) {
	v := b.View
	if len(b.Files) > 0 && string(b.Files) != "null" {
		if err := json.Unmarshal(b.Files, &v.Files); err != nil {
			return v, fmt.Errorf("transfer %s: its files: %w", v.ID, err)
		}
	}
	return v, nil
}

// ListTransfers returns every transfer the agent keeps.
func ListTransfers(ctx context.Context, cl *client.Client) ([]transfer.View, error) {
	var vs []transfer.View
	err := cl.Do(ctx, http.MethodGet, PathTransfers, nil, &vs)
	return vs, err
}

// CancelTransfer cancels a transfer that has not ended.
func CancelTransfer(ctx context.Context, cl *client.Client, id string) (transfer.View, error) {
	var v transfer.View
	err := cl.Do(ctx, http.MethodPost, PathTransfers+"/"+url.PathEscape(id)+"/cancel", nil, &v)
	return v, err
}

// WaitTransfer follows a transfer until it ends, calling update with each
// view. Across a failover it keeps asking (the client moves to the new
// active) for up to patience without an answer. It asks for an answer at
// the transfer's end or after every, whichever comes first, without the
// files until the end (the view it returns has them): it learns of the end
// at once, and a long transfer's files are not sent every time.
func WaitTransfer(ctx context.Context, cl *client.Client, id string, every, patience time.Duration, update func(transfer.View)) (TransferBody, error) {
	lastOK := time.Now()
	var last TransferBody
	for {
		asked := time.Now()
		v, err := GetTransferWait(ctx, cl, id, transfer.FilesEnded, every)
		switch {
		case err == nil:
			lastOK, last = time.Now(), v
			if update != nil {
				update(v.View) // without files: they come at the end
			}
			if transfer.Terminal(v.State) {
				return v, nil
			}
		case ctx.Err() != nil:
			return last, ctx.Err()
		default:
			var apiErr *client.APIError
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
				return last, err
			}
			if time.Since(lastOK) > patience {
				return last, err
			}
		}
		// An agent that does not wait answers at once: poll every
		// interval, as before.
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(every - time.Since(asked)):
		}
	}
}
