package api

import "time"

// Time budgets of the calls whose work grows with their input, declared
// once. Each is a cap (a call ends as soon as its work is done), and the
// caller's deadline caps it too.
const (
	// WriteBytesPerSecond is the rate at which a write's budget assumes
	// PostgreSQL stores and indexes a batch: a write may take
	// QUERY_TIMEOUT plus its request bytes at this rate. Measured on a
	// loaded 2-core machine, new text of distinct words is indexed at
	// about 0.4–0.8 MB/s and rewritten with new content at half that;
	// this rate is below both, so a healthy but slow PostgreSQL is not
	// mistaken for a dead one.
	WriteBytesPerSecond = 128 << 10
	// MaxWriteBudget caps a write's budget (a 4 MiB batch gets about 34 s).
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
