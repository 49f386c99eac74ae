package api

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brainhq/brain/services/memory/store"
)

// errEraseUnfinished: EraseBudget ran out with episodes left (PostgreSQL
// was answering; the namespace was too large for one call).
var errEraseUnfinished = errors.New("erase budget ran out")

// erase deletes ns batch by batch, each batch its own short transaction
// under its own guarded budget, and starts a batch only while a whole
// batch's budget fits in what is left of EraseBudget (the caller's deadline
// caps every batch too). A namespace's size thus never turns into one
// statement that outlasts QUERY_TIMEOUT, and running out of the total
// budget is not a PostgreSQL failure (the breaker does not count it). It
// returns the episodes erased, also with an error: those stay erased, and
// calling again goes on with the rest.
func (s *Server) erase(ctx context.Context, ns string) (int64, error) {
	deadline := time.Now().Add(EraseBudget)
	perBatch := writeBudget(s.d.QueryTimeout, store.EraseBatchBytes)
	var total int64
	for batches := 0; ; batches++ {
		if batches > 0 && time.Until(deadline) < perBatch {
			return total, errEraseUnfinished
		}
		var n int64
		err := s.d.Guard.Do(ctx, perBatch, func(ctx context.Context) error {
			var err error
			n, err = s.d.Store.DeleteNamespaceBatch(ctx, ns)
			return err
		})
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			// The episodes' items went with them; now the buffers themselves.
			return total, s.d.Guard.Do(ctx, s.d.QueryTimeout, func(ctx context.Context) error {
				_, err := s.d.Store.DeleteWorkingMemories(ctx, ns)
				return err
			})
		}
	}
}

// eraseStatus says what an unfinished erase left behind: what it erased
// stays erased, and calling again finishes the job.
func (s *Server) eraseStatus(ctx context.Context, erased int64, err error) error {
	if errors.Is(err, errEraseUnfinished) {
		return status.Errorf(codes.DeadlineExceeded,
			"delete namespace: erased %d episodes in %s, episodes remain: call again to erase the rest (what was erased stays erased)",
			erased, EraseBudget)
	}
	st := status.Convert(s.toStatus(ctx, "delete namespace", err))
	if erased == 0 {
		return st.Err()
	}
	return status.Errorf(st.Code(), "%s; %d episodes were erased before that and stay erased: call again to erase the rest",
		st.Message(), erased)
}
