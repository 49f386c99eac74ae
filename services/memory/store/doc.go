// Package store is the PostgreSQL side of the memory service and the only
// package that speaks SQL: embedded tern migrations (Migrate, SchemaVersion),
// the health probe (Ping), and every episode operation, each scoped to one
// namespace by a key that starts with the namespace.
//
// # Ranked recall: design and why
//
// The goal is recall that finds the episodes a natural-language question is
// about, in conversations as agents keep them (one episode per turn, two or
// more speakers, many sessions, answers that do not repeat the question's
// words, times said relative to when they were said), within a latency
// budget of p50 ≤ 3 ms at 1,000/s on two cores with 100,000 episodes.
//
// Words. BM25 (k1 = 1.2, b = 0.75) over an inverted index the database
// keeps exact by trigger (migrations 001 and 003): postings, one row per
// (episode, word form) with its BM25 term weight
// tf·(k1+1)/(tf + k1·(1−b+b·dl/avgdl)) plus the episode's importance and
// created_at, indexed by (namespace, lexeme, weight DESC); term_stats, each
// form's document frequency and English stem; namespace_stats, episode
// count and total length. A query's content words (recall.Analyze: stop
// words and time expressions removed) are stemmed in SQL; every form of the
// namespace with one of those stems matches, all weighted by one IDF per
// stem, ln(1 + (N − df + 0.5)/(df + 0.5)) with df the forms' document
// frequencies summed. Without a session or speaker filter, recall reads for
// each form only its TermDepth best postings that pass the time and
// importance filters (an index-only scan); with one, it scores the
// SessionCandidates most recent filtered episodes that match the OR
// tsquery.
//
// Context. The ContextSeeds best word matches lend their raw word score to
// their session neighbours, looked up at query time in the session index:
// 0.8 of it to the episode just after a seed that asks something (a
// question mark; 0.08 after a statement), 0.1 to the episode just before.
// An answer is thus found through its question. Because context is read at
// query time it is exact under out-of-order writes, rewrites and deletes
// and costs writes nothing. A neighbour that shares no word and no named
// time needs at least MinContextShare of the best relevance to be kept.
//
// Speakers. Episode.speaker is stored, and namespace_speakers (kept by
// trigger, migration 004) lists each namespace's speakers. When the query
// names one (full or first name), that speaker's episodes among the
// SpeakerRerank best candidates get the speaker part (weight 0.3 against
// the rest's 1) and the name's own word weight drops to 0.3.
//
// Time. recall.Analyze resolves time expressions against as_of
// (timeexpr): each is a window, scoring 1 inside and decaying outside
// (more slowly after it than before: people talk about an event in the
// days after it), weighted 0.8 against relevance's 0.8 when the query names
// a time; the WindowCandidates latest episodes within reach join the
// candidates, so a query that is only a date is answered by time, then
// recency.
//
// The total blends relevance (own words + context, divided by the best
// candidate's), importance, recency (exp(−ln2·age/half_life)), time and
// speaker; RecallScores reports each part and what it contributed. One
// statement, one round trip, bounded work.
//
// Measured (go test -run 'TestConvRecallQuality|TestRecallQuality' -v
// ./services/memory/store/). On the hand-written conversation set
// (testdata/conv: dev 1,604 turns and 135 questions, holdout 997 and 87,
// the holdout never used to choose anything), recall@7 / MRR:
//
//	                                   dev            holdout
//	before (BM25 per form, no context) 0.289 / 0.231  0.276 / 0.183
//	+ context and time                 0.511 / 0.313  0.414 / 0.289
//	+ speaker field                    0.581 / 0.367  0.517 / 0.346
//	+ one IDF per stem (now)           0.585 / 0.372  0.517 / 0.356
//	  same, speaker inside content     0.541 / 0.323  0.443 / 0.296
//	textbook BM25 (in the test)        0.193 / 0.165  0.247 / 0.164
//
// Alternatives measured on dev only: context from the previous episode at
// 0, 0.3, 0.5, 0.8, 1.0 and 1.3 (with 0.8 and 1.0 best; 1.0 and more lost
// on the generated set below), from the next at 0–0.6 (0.1), after a
// statement 0–0.5 of the question's share (0.1); time weight 0.4, 0.8, 1.2
// (0.8; 1.2 found more dated answers on 12 questions, too few to trust);
// speaker weight 0.15, 0.3, 0.6 and name weight 0, 0.3, 0.6 (0.3 and 0.3);
// k1 0.9–2.0 and b 0.3–0.9 moved recall@7 by at most ±0.01 (noise at 135
// questions), so the textbook values stay. Per-form IDF, chosen earlier on
// the generated set, lost to one IDF per stem on dev (0.541 → 0.585 with the
// speaker inline) as on the held-out public chats it was measured on.
//
// The generated set (testdata/eval, 3,314 turns, 112 questions; made by
// corpus.GenerateEvalSet, too close to the ranker it once chose) stays a
// regression check with pinned floors: recall@7 0.598, MRR 0.513 now
// (0.670 / 0.595 before, when it chose per-form IDF), textbook BM25 0.580 /
// 0.552, the prototype's substring match 0.
//
// Trade-offs: a posting's weight uses avgdl as of its write (not revised as
// the namespace grows; the drift is small past a few dozen episodes); an
// episode outside a form's TermDepth best postings gets no credit for that
// form; context reaches only the neighbours of the ContextSeeds best
// matches; a speaker is recognised by exact (case-folded) full or first
// name.
//
// # Locking
//
// Every statement that changes episodes first locks its namespaces' rows in
// namespace_stats, in key order; the triggers then update term_stats and
// postings of those namespaces only. Writers of one namespace are therefore
// serialised and cannot deadlock; readers never wait. A write's time budget
// (the api's) leaves room for a few queued writers. DeleteNamespace erases
// in bounded batches, each its own transaction, so no lock is held for long
// whatever the namespace's size.
package store
