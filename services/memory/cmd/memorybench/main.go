// Command memorybench measures Recall on the corpus of docs/design.md: natural-
// language-like text with a Zipf vocabulary, by default 100,000 episodes in
// 20 namespaces, queried at a fixed concurrency for a fixed time. It reports
// p50/p95/p99 latency, throughput and errors for (a) the exact SQL that
// store.Recall runs, straight through pgx, (b) store.Recall itself (the same
// statement plus decoding into episodes), and (c) when --grpc-addr is given,
// brain.memory.v1.MemoryService/Recall over gRPC, with their ratio, as a
// markdown table.
//
//	memorybench --database-url postgres://... --load
//	memorybench --pgtest --pgtest-dir .run/benchpg --load   # a throwaway local cluster
//
// It only talks to loopback addresses and stops after --duration or
// --max-requests per measured path, whichever comes first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/kit/pgtest"
	"github.com/brainhq/brain/services/memory/corpus"
	"github.com/brainhq/brain/services/memory/episode"
	"github.com/brainhq/brain/services/memory/recall"
	"github.com/brainhq/brain/services/memory/store"
)

type options struct {
	databaseURL string
	usePgtest   bool
	pgtestDir   string
	grpcAddr    string
	episodes    int
	namespaces  int
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	maxRequests int
	load        bool
	seed        uint64
	limit       int
	queries     int
	callTimeout time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "memorybench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("memorybench", flag.ContinueOnError)
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL (loopback only); default $DATABASE_URL")
	fs.BoolVar(&o.usePgtest, "pgtest", false, "start a local PostgreSQL with the pgtest harness instead of --database-url")
	fs.StringVar(&o.pgtestDir, "pgtest-dir", "", "with --pgtest: keep the cluster's data here (reused across runs); empty = temporary")
	fs.StringVar(&o.grpcAddr, "grpc-addr", "", "also drive MemoryService/Recall over gRPC at this loopback address")
	fs.IntVar(&o.episodes, "episodes", 100000, "corpus size")
	fs.IntVar(&o.namespaces, "namespaces", 20, "namespaces the corpus is spread over")
	fs.IntVar(&o.concurrency, "concurrency", 8, "concurrent callers")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per path")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up per path")
	fs.IntVar(&o.maxRequests, "max-requests", 1_000_000, "stop a path after this many requests")
	fs.BoolVar(&o.load, "load", false, "migrate and bulk-load (COPY) the corpus when the table holds fewer episodes than --episodes")
	fs.Uint64Var(&o.seed, "seed", corpus.DefaultConfig().Seed, "corpus seed")
	fs.IntVar(&o.limit, "limit", episode.DefaultLimit, "recall limit")
	fs.IntVar(&o.queries, "queries", 10000, "distinct queries cycled through")
	fs.DurationVar(&o.callTimeout, "call-timeout", 2*time.Second, "deadline of each call")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.usePgtest == (o.databaseURL != "") && !o.usePgtest:
		return o, errors.New("give --database-url (or DATABASE_URL) or --pgtest")
	case o.episodes < 1 || o.namespaces < 1 || o.concurrency < 1 || o.duration <= 0 || o.maxRequests < 1 || o.queries < 1:
		return o, errors.New("--episodes, --namespaces, --concurrency, --duration, --max-requests and --queries must be positive")
	case o.limit < 1 || o.limit > episode.MaxLimit:
		return o, fmt.Errorf("--limit must be 1..%d", episode.MaxLimit)
	}
	return o, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	dbURL := o.databaseURL
	if o.usePgtest {
		startCtx, cancel := context.WithTimeout(ctx, time.Minute)
		cluster, err := pgtest.Start(startCtx, pgtest.Options{DataDir: o.pgtestDir})
		cancel()
		if err != nil {
			return fmt.Errorf("start pgtest cluster: %w", err)
		}
		defer cluster.Close()
		dbURL = cluster.URL("postgres")
	}
	if err := checkLoopbackURL(dbURL); err != nil {
		return err
	}
	if o.grpcAddr != "" {
		if err := checkLoopbackAddr(o.grpcAddr); err != nil {
			return err
		}
	}
	cfg := corpus.DefaultConfig()
	cfg.Seed, cfg.Namespaces = o.seed, o.namespaces
	c, err := corpus.New(cfg)
	if err != nil {
		return err
	}
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	poolCfg.MaxConns = int32(o.concurrency)
	poolCfg.MinConns = int32(o.concurrency)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()

	if o.load {
		if err := load(ctx, dbURL, pool, c, o.episodes, out); err != nil {
			return err
		}
	}
	var have int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(episode_count), 0)::bigint FROM namespace_stats`).Scan(&have); err != nil {
		return fmt.Errorf("count episodes (migrated? try --load): %w", err)
	}
	if have < int64(o.episodes) {
		return fmt.Errorf("the database holds %d episodes, fewer than --episodes %d: add --load", have, o.episodes)
	}
	asOf := cfg.Epoch
	query := func(i int) recall.Query {
		ns, text := c.Query(i % o.queries)
		return recall.Query{Namespace: ns, Text: text, Limit: o.limit, AsOf: asOf}
	}

	fmt.Fprintf(out, "corpus: %d episodes in %d namespaces (seed %d, Zipf %.2f over %d words); %d distinct queries, limit %d\n",
		have, o.namespaces, o.seed, cfg.ZipfS, cfg.Vocabulary, o.queries, o.limit)
	fmt.Fprintf(out, "load: concurrency %d, %s measured after %s warm-up, at most %d requests, %s deadline per call\n\n",
		o.concurrency, o.duration, o.warmup, o.maxRequests, o.callTimeout)

	sqlCall := func(ctx context.Context, i int) (int, error) {
		st, ok := store.RecallStatement(query(i))
		if !ok {
			return 0, nil
		}
		rows, err := pool.Query(ctx, st.SQL, st.Args...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
		}
		return n, rows.Err()
	}
	results := []result{measure(ctx, "SQL via pgx (store.RecallStatement)", o, sqlCall)}
	st := store.New(pool)
	storeCall := func(ctx context.Context, i int) (int, error) {
		rs, err := st.Recall(ctx, query(i))
		return len(rs), err
	}
	results = append(results, measure(ctx, "store.Recall (Go API, rows decoded)", o, storeCall))

	if o.grpcAddr != "" {
		conn, err := grpc.NewClient(o.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("grpc %s: %w", o.grpcAddr, err)
		}
		defer conn.Close()
		client := memoryv1.NewMemoryServiceClient(conn)
		grpcCall := func(ctx context.Context, i int) (int, error) {
			q := query(i)
			resp, err := client.Recall(ctx, &memoryv1.RecallRequest{
				Namespace: q.Namespace, Query: q.Text, Limit: int32(q.Limit), AsOf: timestamppb.New(q.AsOf),
			})
			if err != nil {
				return 0, err
			}
			if resp.GetDegraded() {
				return 0, fmt.Errorf("degraded answer: %s", resp.GetDegradedReason())
			}
			return len(resp.GetEpisodes()), nil
		}
		results = append(results, measure(ctx, "gRPC MemoryService/Recall", o, grpcCall))
	}
	report(out, results)
	return ctx.Err()
}

// result is one measured path.
type result struct {
	name      string
	latencies []time.Duration
	errors    int
	firstErr  error
	elapsed   time.Duration
	rows      int
	empty     int
}

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
}

func (r result) throughput() float64 {
	return float64(len(r.latencies)) / r.elapsed.Seconds()
}

// measure runs call from o.concurrency goroutines: a warm-up, then the
// measured period, bounded by o.duration and o.maxRequests.
func measure(ctx context.Context, name string, o options, call func(context.Context, int) (int, error)) result {
	phase := func(d time.Duration, limit int, record bool) result {
		res := result{name: name}
		var mu sync.Mutex
		var wg sync.WaitGroup
		next := make(chan int)
		start := time.Now()
		deadline := start.Add(d)
		go func() { // the feeder owns next and closes it
			defer close(next)
			for i := 0; i < limit && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				next <- i
			}
		}()
		for range o.concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var lat []time.Duration
				var errs, rows, empty int
				var firstErr error
				for i := range next {
					callCtx, cancel := context.WithTimeout(ctx, o.callTimeout)
					t := time.Now()
					n, err := call(callCtx, i)
					el := time.Since(t)
					cancel()
					if err != nil {
						errs++
						if firstErr == nil {
							firstErr = err
						}
						continue
					}
					lat = append(lat, el)
					rows += n
					if n == 0 {
						empty++
					}
				}
				if record {
					mu.Lock()
					res.latencies = append(res.latencies, lat...)
					res.errors += errs
					res.rows += rows
					res.empty += empty
					if res.firstErr == nil {
						res.firstErr = firstErr
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		res.elapsed = time.Since(start)
		return res
	}
	if o.warmup > 0 {
		phase(o.warmup, o.maxRequests, false)
	}
	res := phase(o.duration, o.maxRequests, true)
	slices.Sort(res.latencies)
	return res
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func report(out io.Writer, results []result) {
	fmt.Fprintln(out, "| path | requests | errors | throughput | p50 | p95 | p99 | rows/answer | empty answers |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		ok := len(r.latencies)
		fmt.Fprintf(out, "| %s | %d | %d | %.0f/s | %s | %s | %s | %.2f | %.1f%% |\n", r.name, ok, r.errors, r.throughput(),
			ms(r.pct(0.50)), ms(r.pct(0.95)), ms(r.pct(0.99)), float64(r.rows)/float64(max(ok, 1)), 100*float64(r.empty)/float64(max(ok, 1)))
	}
	fmt.Fprintln(out)
	for _, b := range results[1:] {
		a := results[0]
		ratio := func(x, y time.Duration) float64 { return float64(y) / float64(max(x, 1)) }
		fmt.Fprintf(out, "%s / SQL: p50 %.2f×, p99 %.2f×, throughput %.2f×\n", b.name,
			ratio(a.pct(0.5), b.pct(0.5)), ratio(a.pct(0.99), b.pct(0.99)), b.throughput()/max(a.throughput(), 1e-9))
	}
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(out, "first error of %s: %v\n", r.name, r.firstErr)
		}
	}
}

// load migrates the database and COPYs the corpus episodes it lacks, in
// chunks, each in a transaction that first locks its namespaces (the
// store's lock order), then refreshes planner statistics and the visibility
// map so recall's index-only scans are index-only.
func load(ctx context.Context, dbURL string, pool *pgxpool.Pool, c *corpus.Corpus, want int, out io.Writer) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect for migrate: %w", err)
	}
	err = store.Migrate(ctx, conn)
	conn.Close(context.Background())
	if err != nil {
		return err
	}
	var have int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM episodes`).Scan(&have); err != nil {
		return fmt.Errorf("count episodes: %w", err)
	}
	if have >= int64(want) {
		return nil
	}
	start := time.Now()
	fmt.Fprintf(out, "loading episodes %d..%d with COPY\n", have, want-1)
	const chunk = 5000
	nss := make([]string, c.Config().Namespaces)
	for i := range nss {
		nss[i] = corpus.Namespace(i)
	}
	for from := int(have); from < want; from += chunk {
		to := min(from+chunk, want)
		rows := make([][]any, 0, to-from)
		for i := from; i < to; i++ {
			e := c.Episode(i)
			rows = append(rows, []any{e.Namespace, e.ID, e.SessionID, e.Content, e.Importance, e.CreatedAt})
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO namespace_stats AS s (namespace) SELECT unnest($1::text[]) ORDER BY 1
ON CONFLICT (namespace) DO UPDATE SET episode_count = s.episode_count`, nss); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"episodes"},
				[]string{"namespace", "id", "session_id", "content", "importance", "created_at"}, pgx.CopyFromRows(rows))
			return err
		})
		if err != nil {
			return fmt.Errorf("copy episodes %d..%d: %w", from, to-1, err)
		}
	}
	fmt.Fprintf(out, "loaded %d episodes in %s; vacuum analyze\n", want-int(have), time.Since(start).Round(time.Millisecond))
	for _, t := range []string{"episodes", "postings", "term_stats", "namespace_stats"} {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+t); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	return nil
}

func checkLoopbackURL(raw string) error {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	hosts := []string{cfg.Host}
	for _, fb := range cfg.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if !strings.HasPrefix(h, "/") && !isLoopback(h) {
			return fmt.Errorf("database host %q is not a loopback address or socket: the benchmark only loads this machine", h)
		}
	}
	return nil
}

func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--grpc-addr %q: %w", addr, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("--grpc-addr %q is not a loopback address", addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
