package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/memory/corpus"
)

// loadBatch is how many episodes one WriteEpisodes call carries (at most
// episode.MaxBatch, 500); smaller batches keep each call well inside the
// service's 2 s query timeout on a busy machine.
const loadBatch = 250

// loadCorpus makes sure corpus episodes 0..n-1 are stored, writing the
// missing ones through WriteEpisodes (the service's own write path). The
// corpus is always written in index order, so what is stored is a prefix;
// its length is found with a binary search over GetEpisode. Writes are
// idempotent upserts on the corpus' fixed ids, so an interrupted load
// resumes. When pool is not nil, VACUUM (ANALYZE) follows a load so recall
// plans and index-only scans see the new rows, as after a real bulk import.
func loadCorpus(ctx context.Context, mem memoryv1.MemoryServiceClient, pool *pgxpool.Pool, c *corpus.Corpus, n int, log io.Writer) error {
	if n <= 0 {
		return nil
	}
	var probeErr error
	have := sort.Search(n, func(i int) bool { // first index not stored
		if probeErr != nil {
			return true
		}
		ok, err := stored(ctx, mem, c, i)
		if err != nil {
			probeErr = err
		}
		return !ok
	})
	if probeErr != nil {
		return probeErr
	}
	if have == n {
		fmt.Fprintf(log, "corpus: episodes 0..%d already stored\n", n-1)
		return nil
	}
	fmt.Fprintf(log, "corpus: writing episodes %d..%d through WriteEpisodes, %d per call\n", have, n-1, loadBatch)
	start := time.Now()
	for from := have; from < n; from += loadBatch {
		to := min(from+loadBatch, n)
		req := &memoryv1.WriteEpisodesRequest{}
		for i := from; i < to; i++ {
			e := c.Episode(i)
			req.Episodes = append(req.Episodes, &memoryv1.Episode{
				Id: e.ID, Namespace: e.Namespace, SessionId: e.SessionID, Content: e.Content,
				Importance: proto.Float64(e.Importance), CreatedAt: timestamppb.New(e.CreatedAt),
			})
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := mem.WriteEpisodes(cctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("write corpus episodes %d..%d: %w", from, to-1, err)
		}
		if (to-have)%(40*loadBatch) == 0 || to == n {
			el := time.Since(start)
			fmt.Fprintf(log, "corpus: %d/%d written, %.0f episodes/s\n", to, n, float64(to-have)/el.Seconds())
		}
	}
	if pool != nil {
		t := time.Now()
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
			return fmt.Errorf("vacuum analyze after load: %w", err)
		}
		fmt.Fprintf(log, "corpus: VACUUM (ANALYZE) in %s\n", time.Since(t).Round(time.Millisecond))
	}
	return nil
}

func stored(ctx context.Context, mem memoryv1.MemoryServiceClient, c *corpus.Corpus, i int) (bool, error) {
	e := c.Episode(i)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := mem.GetEpisode(cctx, &memoryv1.GetEpisodeRequest{Namespace: e.Namespace, Id: e.ID})
	switch status.Code(err) {
	case codes.OK:
		return true, nil
	case codes.NotFound:
		return false, nil
	default:
		return false, fmt.Errorf("look up corpus episode %d: %w", i, err)
	}
}
