package api

import "time"

// Time budgets of the calls whose work grows with their input, declared
// once. Each is a cap (a call ends as soon as its work is done), and the
// caller's deadline caps it too.
const (
	// WriteBytesPerSecond is the rate at which a write's budget assumes
	// PostgreSQL stores and indexes a batch: a write may take
	// QUERY_TIMEOUT plus its request bytes at this rate. Measured on a
	// loaded 2-core machine, 50 × 15 KB of distinct words are inserted at
	// 0.4–0.8 MB/s and rewritten with new content at 0.2–0.4 MB/s, and
	// writers of one namespace queue behind each other (its statistics row
	// is locked until commit); this rate leaves room for a few of them, so
	// a healthy but slow PostgreSQL is not mistaken for a dead one.
	WriteBytesPerSecond = 64 << 10
	// MaxWriteBudget caps a write's budget (a 750 KB batch gets about 13 s,
	// a 4 MiB one the cap).
	MaxWriteBudget = time.Minute
	// EraseBudget is the time DeleteNamespace may spend in all. It erases
	// in batches (store.EraseBatchEpisodes, store.EraseBatchBytes), each
	// with a write's budget for EraseBatchBytes, and starts one only while
	// that fits in what is left; what it erased stays erased.
	EraseBudget = time.Minute
)

// writeBudget is the time a write of n request bytes may spend in
// PostgreSQL.
func writeBudget(queryTimeout time.Duration, n int) time.Duration {
	d := queryTimeout + time.Duration(float64(n)/WriteBytesPerSecond*float64(time.Second))
	return min(d, max(MaxWriteBudget, queryTimeout))
}
