package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	memoryv1 "github.com/brainhq/brain/gen/brain/memory/v1"
	"github.com/brainhq/brain/services/e2e/internal/stack"
	"github.com/brainhq/brain/services/kit/pgtest"
)

// outcomeUnknownReason is the ErrorInfo reason memory gives a write that may
// or may not have been stored.
const outcomeUnknownReason = "WRITE_OUTCOME_UNKNOWN"

// writeOutcome is what the service said about one batch.
type writeOutcome int

const (
	outcomeAcked      writeOutcome = iota // OK: stored
	outcomeRolledBack                     // the service says nothing was stored
	outcomeUnknown                        // the service says it may or may not be stored
	outcomeNoAnswer                       // no answer from the service (the client's own deadline)
	outcomeOther                          // anything else: a test failure
)

func (o writeOutcome) String() string {
	return [...]string{"acknowledged", "rolled back", "outcome unknown", "no answer", "other"}[o]
}

// classifyWrite reads a WriteEpisodes result as a client must: the
// ErrorInfo reason marks an unknown outcome; any other answer of the service
// to a failed write (its messages start with the operation) says nothing was
// stored.
func classifyWrite(err error) writeOutcome {
	if err == nil {
		return outcomeAcked
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == outcomeUnknownReason {
			return outcomeUnknown
		}
	}
	switch {
	case st.Code() == codes.Internal:
		return outcomeOther
	case strings.HasPrefix(st.Message(), "write episodes:") &&
		(st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded):
		return outcomeRolledBack
	case st.Code() == codes.DeadlineExceeded || st.Code() == codes.Unavailable:
		return outcomeNoAnswer
	}
	return outcomeOther
}

// outcomeLedger records every batch of concurrent writers by outcome.
type outcomeLedger struct {
	mu      sync.Mutex
	batches map[writeOutcome][][]*memoryv1.Episode
	other   []string
	errs    map[string]error // first id of a failed batch -> its error
}

func newOutcomeLedger() *outcomeLedger {
	return &outcomeLedger{batches: map[writeOutcome][][]*memoryv1.Episode{}, errs: map[string]error{}}
}

func (l *outcomeLedger) add(o writeOutcome, batch []*memoryv1.Episode, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches[o] = append(l.batches[o], batch)
	if err != nil {
		l.errs[batch[0].GetId()] = err
	}
	if o == outcomeOther && len(l.other) < 20 {
		l.other = append(l.other, err.Error())
	}
}

func (l *outcomeLedger) count(o writeOutcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.batches[o])
}

// startOutcomeWriters runs n writers, each writing batches of three new
// episodes with client-supplied ids to its own namespace (so they do not
// queue on one namespace's lock) under a 1 s deadline, until stop.
func startOutcomeWriters(mem memoryv1.MemoryServiceClient, prefix string, n int) (*outcomeLedger, []string, func()) {
	l := newOutcomeLedger()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	nss := make([]string, n)
	for w := range n {
		nss[w] = namespace(prefix)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				batch := make([]*memoryv1.Episode, 3)
				for i := range batch {
					batch[i] = &memoryv1.Episode{Id: newID(), Namespace: nss[w], SessionId: "writer",
						Content: fmt.Sprintf("writer %d batch %d item %d", w, seq, i)}
				}
				cctx, ccancel := context.WithTimeout(ctx, time.Second)
				_, err := mem.WriteEpisodes(cctx, &memoryv1.WriteEpisodesRequest{Episodes: batch})
				ccancel()
				o := classifyWrite(err)
				if ctx.Err() != nil && err != nil {
					o = outcomeNoAnswer // cut by the stop, not by the service
				}
				l.add(o, batch, err)
				if err != nil {
					select { // a refusing service answers at once: do not spin
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	return l, nss, func() {
		cancel()
		wg.Wait()
	}
}

// verify checks the store against what the service said: every acknowledged
// batch is stored, no batch said to be rolled back is, and batches of unknown
// outcome (or no answer) are stored or not, whole. Then it retries those with
// their ids and checks that each episode ends up stored exactly once. It
// returns how many of the unknown-outcome batches PostgreSQL had committed.
func (l *outcomeLedger) verify(t *testing.T, mem memoryv1.MemoryServiceClient, nss []string) (unknownStored int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.other) > 0 {
		t.Errorf("writes answered with unexpected errors (want OK, UNAVAILABLE or DEADLINE_EXCEEDED): %q", l.other)
	}
	count := func() map[string]int {
		seen := map[string]int{}
		for _, ns := range nss {
			for _, e := range listAll(t, mem, ns) {
				seen[e.GetId()]++
			}
		}
		return seen
	}
	seen := count()
	storedWhole := func(batch []*memoryv1.Episode) bool {
		n := 0
		for _, e := range batch {
			if seen[e.GetId()] > 0 {
				n++
			}
		}
		if n != 0 && n != len(batch) {
			t.Errorf("batch stored in part: %d of %d episodes", n, len(batch))
		}
		return n > 0
	}
	for _, b := range l.batches[outcomeAcked] {
		if !storedWhole(b) {
			t.Errorf("acknowledged batch %s is not stored", b[0].GetId())
		}
	}
	wrongly := 0
	for _, b := range l.batches[outcomeRolledBack] {
		if storedWhole(b) {
			wrongly++
			if wrongly <= 3 {
				t.Errorf("batch %s answered %v is stored", b[0].GetId(), l.errs[b[0].GetId()])
			}
		}
	}
	if wrongly > 0 {
		t.Errorf("%d of %d batches answered as rolled back (nothing stored) were stored", wrongly, len(l.batches[outcomeRolledBack]))
	}
	for _, b := range l.batches[outcomeUnknown] {
		if storedWhole(b) {
			unknownStored++
		}
	}
	retry := append(append([][]*memoryv1.Episode{}, l.batches[outcomeUnknown]...), l.batches[outcomeNoAnswer]...)
	for _, b := range retry {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := mem.WriteEpisodes(ctxFor(t, 2*time.Second), &memoryv1.WriteEpisodesRequest{Episodes: b})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("retrying a batch of unknown outcome: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	seen = count()
	reported := 0
	for o, bs := range l.batches {
		for _, b := range bs {
			for _, e := range b {
				want := 1
				if o == outcomeRolledBack || o == outcomeOther {
					want = 0
				}
				if got := seen[e.GetId()]; got != want && !(o == outcomeOther && got == 1) {
					if reported++; reported <= 5 {
						t.Errorf("%s episode %s stored %d times after the retries, want %d", o, e.GetId(), got, want)
					}
				}
			}
		}
	}
	return unknownStored
}

// postgresPIDs returns the postmaster's pid and those of its children (the
// backends and auxiliary processes), read from postmaster.pid and /proc.
func postgresPIDs(t *testing.T, c *pgtest.Cluster) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir(), "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("postmaster.pid: %q", first)
	}
	pids := []int{pm}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat)[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func signalPIDs(t *testing.T, pids []int, sig syscall.Signal) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
			t.Fatalf("signal %d to %d: %v", sig, pid, err)
		}
	}
}

// waitWrites waits until the writers have had n more batches acknowledged,
// so the next fault finds writes in flight.
func waitWrites(t *testing.T, l *outcomeLedger, n int, within time.Duration) {
	t.Helper()
	base := l.count(outcomeAcked)
	deadline := time.Now().Add(within)
	for l.count(outcomeAcked) < base+n {
		if time.Now().After(deadline) {
			t.Fatalf("writers had fewer than %d batches acknowledged within %s", n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// outcomeUnknownMetric reads brain_memory_write_outcome_unknown_total.
func outcomeUnknownMetric(t *testing.T, p *stack.Process) int {
	t.Helper()
	code, body := httpDo(t, "GET", "http://"+p.HTTPAddr+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "brain_memory_write_outcome_unknown_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q", line)
			}
			return int(f)
		}
	}
	t.Fatal("/metrics has no brain_memory_write_outcome_unknown_total")
	return 0
}

func logOutcomes(t *testing.T, what string, l *outcomeLedger, faults, unknownStored int) {
	t.Helper()
	total := 0
	for o := outcomeAcked; o <= outcomeOther; o++ {
		total += l.count(o)
	}
	unknown := l.count(outcomeUnknown)
	t.Logf("%s: %d faults, %d batches: %d acknowledged, %d rolled back (none stored), %d outcome unknown (%d of them stored), %d without an answer, %d other",
		what, faults, total, l.count(outcomeAcked), l.count(outcomeRolledBack), unknown, unknownStored, l.count(outcomeNoAnswer), l.count(outcomeOther))
	failed := total - l.count(outcomeAcked)
	rate := "n/a"
	if failed > 0 {
		rate = fmt.Sprintf("%d of %d failed batches (%.1f%%), %.2f per fault", unknown, failed, 100*float64(unknown)/float64(failed), float64(unknown)/float64(faults))
	}
	measured.Add(what+": writes of unknown outcome", rate, "")
}

// TestFaultWritePostgresPaused: PostgreSQL is paused (SIGSTOP of the
// postmaster and every backend) under writers with ids, longer than their
// deadline, then resumed, several times. Every acknowledged write is stored,
// no write answered as rolled back is, writes whose COMMIT was sent are
// answered as of unknown outcome (and counted), and retries with the same
// ids leave each episode stored once.
func TestFaultWritePostgresPaused(t *testing.T) {
	skipShort(t)
	f := startFault(t, faultOptions{})
	l, nss, stop := startOutcomeWriters(f.memory, "paused", 4)
	defer stop()
	const pauses = 8
	for range pauses {
		waitWrites(t, l, 20, 10*time.Second)
		pids := postgresPIDs(t, f.cluster)
		signalPIDs(t, pids, syscall.SIGSTOP)
		time.Sleep(1500 * time.Millisecond) // past the writers' 1 s deadline
		signalPIDs(t, pids, syscall.SIGCONT)
		stack.MustWaitHealth(t, f.memConn, "postgres", stack.Serving, time.Now(), 5*time.Second)
	}
	waitWrites(t, l, 20, 10*time.Second)
	stop()
	unknownStored := l.verify(t, f.memory, nss)
	// The counter may also hold writes whose answer came after the client's
	// own deadline (no answer here).
	if got, want := outcomeUnknownMetric(t, f.mem), l.count(outcomeUnknown); got < want || got > want+l.count(outcomeNoAnswer) {
		t.Errorf("brain_memory_write_outcome_unknown_total = %d, want %d (the writes answered so) to %d", got, want, want+l.count(outcomeNoAnswer))
	}
	logOutcomes(t, "Postgres paused 1.5 s under 4 writers", l, pauses, unknownStored)
}

// startDurableFault is startFault (without proxies or the orchestrator) on
// a database whose commits survive a crash: the test clusters run with
// synchronous_commit=off, which loses acknowledged commits to an immediate
// shutdown by design, and the crash test must tell those apart from writes
// the service lost. (fsync stays off: a process crash keeps the OS's cache.)
func startDurableFault(t *testing.T) *faultStack {
	t.Helper()
	f := &faultStack{cluster: pgtest.NewCluster(t), db: "brain_e2e"}
	ctx := ctxFor(t, 30*time.Second)
	if _, err := f.cluster.CreateDatabase(ctx, f.db); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, f.cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Exec(ctx, "ALTER DATABASE "+f.db+" SET synchronous_commit = on")
	_ = admin.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.mem = stack.StartMemory(t, bins.Memory, stack.MemoryConfig{
		Postgres: stack.Postgres{Host: f.cluster.Host(), Port: f.cluster.Port(), Database: f.db, PasswordFile: f.cluster.PasswordFile()},
	})
	f.waitUp(t, f.mem)
	f.memConn = stack.Dial(t, f.mem.GRPCAddr)
	stack.MustWaitHealth(t, f.memConn, "postgres", stack.Serving, f.mem.Started, 5*time.Second)
	f.memory = memoryv1.NewMemoryServiceClient(f.memConn)
	return f
}

// crashPostgres stops PostgreSQL as `pg_ctl stop -m immediate` does (SIGQUIT
// to the postmaster: every backend quits at once, no checkpoint, crash
// recovery at the next start) and waits until the postmaster is gone.
func crashPostgres(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	pm := postgresPIDs(t, c)[0]
	signalPIDs(t, []int{pm}, syscall.SIGQUIT)
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pm, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still running 10 s after SIGQUIT", pm)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFaultWritePostgresCrash: PostgreSQL crashes and restarts (`pg_ctl
// restart -m immediate`) under writers with ids, several times. Connection
// loss is UNAVAILABLE, never INTERNAL ("unexpected EOF" used to be); every
// acknowledged write is stored, none answered as rolled back is, and
// retries with the same ids leave each episode stored once.
func TestFaultWritePostgresCrash(t *testing.T) {
	skipShort(t)
	f := startDurableFault(t)
	l, nss, stop := startOutcomeWriters(f.memory, "crash", 4)
	defer stop()
	const crashes = 6
	for range crashes {
		waitWrites(t, l, 20, 10*time.Second)
		crashPostgres(t, f.cluster)
		if err := f.cluster.Restart(ctxFor(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		stack.MustWaitHealth(t, f.memConn, "postgres", stack.Serving, time.Now(), 10*time.Second)
	}
	waitWrites(t, l, 20, 10*time.Second)
	stop()
	if n := l.count(outcomeOther); n > 0 {
		t.Errorf("%d writes failed with codes other than UNAVAILABLE/DEADLINE_EXCEEDED (INTERNAL among them) while PostgreSQL crashed", n)
	}
	unknownStored := l.verify(t, f.memory, nss)
	logOutcomes(t, "Postgres crashed (immediate restart) under 4 writers", l, crashes, unknownStored)
}
