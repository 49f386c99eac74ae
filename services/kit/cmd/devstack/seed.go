package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
)

// demoEpisodes are two short sessions of an engineering assistant's memory.
// Fixed ids make seeding idempotent: a restart rewrites, never duplicates.
var demoEpisodes = []struct {
	id, session, content string
	ago                  time.Duration
	importance           float64
	valence, arousal     float64
}{
	{"7d1c1a52-0001-4000-8000-000000000001", "release-42", "We planned the release: migrate the database first, then deploy the API behind a feature flag.", 72 * time.Hour, 0.7, 0.3, 0.4},
	{"7d1c1a52-0001-4000-8000-000000000002", "release-42", "The database migration took 40 minutes because the episodes index was rebuilt; next time build it concurrently.", 70 * time.Hour, 0.8, -0.4, 0.6},
	{"7d1c1a52-0001-4000-8000-000000000003", "release-42", "The deploy went smoothly after the migration; error rates stayed flat and the team was relieved.", 69 * time.Hour, 0.7, 0.7, 0.5},
	{"7d1c1a52-0001-4000-8000-000000000004", "release-42", "Post-release review: keep the feature flag for a week, then remove the old code path.", 48 * time.Hour, 0.5, 0.4, 0.2},
	{"7d1c1a52-0001-4000-8000-000000000005", "incident-7", "Pager at 3am: recall latency spiked because Postgres ran out of connections.", 30 * time.Hour, 0.9, -0.8, 0.9},
	{"7d1c1a52-0001-4000-8000-000000000006", "incident-7", "We raised the pool size and added a circuit breaker so a dead database fails fast.", 29 * time.Hour, 0.8, 0.2, 0.6},
	{"7d1c1a52-0001-4000-8000-000000000007", "incident-7", "Lesson: every network call needs a deadline; the old health check hung forever.", 28 * time.Hour, 0.9, -0.2, 0.5},
	{"7d1c1a52-0001-4000-8000-000000000008", "planning", "Goal for next quarter: ship the release with zero downtime and faster recall.", 5 * time.Hour, 0.6, 0.5, 0.4},
}

func seedDemo(ctx context.Context, addr string) (int, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	now := time.Now()
	req := &memoryv1.WriteEpisodesRequest{}
	for _, e := range demoEpisodes {
		req.Episodes = append(req.Episodes, &memoryv1.Episode{
			Id: e.id, Namespace: "demo", SessionId: e.session, Content: e.content,
			Importance: proto.Float64(e.importance),
			CreatedAt:  timestamppb.New(now.Add(-e.ago).Truncate(time.Second)),
			Affect:     &memoryv1.Affect{Valence: e.valence, Arousal: e.arousal, Intensity: e.arousal},
			Metadata:   map[string]string{"source": "devstack-seed"},
		})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := memoryv1.NewMemoryServiceClient(conn).WriteEpisodes(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	return len(resp.GetEpisodes()), nil
}
