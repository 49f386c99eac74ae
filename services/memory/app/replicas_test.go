package app

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/pgtest"
	"github.com/brainhq/brain/services/memory/store"
)

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOtherReplicasDeletesPurgeTheCache: a delete made by another replica
// (its own store over the same database) purges this replica's cache,
// through PostgreSQL LISTEN/NOTIFY, so with PostgreSQL down it does not
// serve what was deleted; and when its listener connection is lost, it
// empties its cache once it listens again. (One App per process: the
// gateway's query parser is process-wide, so two would race.)
func TestOtherReplicasDeletesPurgeTheCache(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	dbURL, err := cluster.CreateDatabase(context.Background(), "brain")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dbURL)
	cfg.CacheSync = true
	r := startApp(t, cfg)
	r.waitHealth(t, PostgresCheck, healthpb.HealthCheckResponse_SERVING, 10*time.Second)
	waitFor(t, "listening for deletes", 5*time.Second, func() bool { return gaugeValue(t, r.app, "brain_memory_recall_cache_sync") == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	otherReplica := store.New(pool)

	w, err := r.client.WriteEpisodes(ctx, &memoryv1.WriteEpisodesRequest{Episodes: []*memoryv1.Episode{
		{Namespace: "n", Content: "the ferry timetable changed"},
		{Namespace: "n", Content: "the bridge tolls were dropped"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ferry, bridge := w.GetEpisodes()[0].GetId(), w.GetEpisodes()[1].GetId()
	ferryQ := &memoryv1.RecallRequest{Namespace: "n", Query: "ferry timetable"}
	bridgeQ := &memoryv1.RecallRequest{Namespace: "n", Query: "bridge tolls"}
	warm := func() {
		t.Helper()
		for _, q := range []*memoryv1.RecallRequest{ferryQ, bridgeQ} {
			if rec, err := r.client.Recall(ctx, q); err != nil || len(rec.GetEpisodes()) != 1 {
				t.Fatalf("recall %q: %v %v", q.GetQuery(), rec, err)
			}
		}
		if n := r.app.cache.Len(); n != 2 {
			t.Fatalf("%d cached answers, want 2", n)
		}
	}
	warm()

	// Losing the listener connection empties the cache once it listens
	// again: deletes may have gone unheard meanwhile.
	var killed int
	if err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query ILIKE 'LISTEN %' AND datname = current_database()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listeners: %v", killed, err)
	}
	waitFor(t, "cache emptied on listening again", 5*time.Second, func() bool {
		return r.app.cache.Len() == 0 && gaugeValue(t, r.app, "brain_memory_recall_cache_sync") == 1
	})
	warm()

	// The other replica deletes the ferry episode: the answer holding it
	// goes, the other stays.
	if ok, err := otherReplica.Delete(ctx, "n", ferry); err != nil || !ok {
		t.Fatalf("delete through the other replica: %v %v", ok, err)
	}
	waitFor(t, "the answer holding the deleted episode purged", 5*time.Second, func() bool { return r.app.cache.Len() == 1 })

	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	rec, err := r.client.Recall(ctx, ferryQ)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rec.GetEpisodes() {
		if e.GetEpisode().GetId() == ferry {
			t.Errorf("served the episode another replica deleted, with PostgreSQL down: %v", rec)
		}
	}
	if rec, err := r.client.Recall(ctx, bridgeQ); err != nil || rec.GetSource() != memoryv1.RecallSource_RECALL_SOURCE_CACHE ||
		len(rec.GetEpisodes()) != 1 || rec.GetEpisodes()[0].GetEpisode().GetId() != bridge {
		t.Errorf("the answer without the deleted episode not served from the cache: %v %v", rec, err)
	}
}
