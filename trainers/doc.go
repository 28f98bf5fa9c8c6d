// Package trainers owns how Θ moves and the one loop every trainer shares.
//
// A Trainer advances an explicit State (step, Θ, RNG state, the trainer's own
// scalars) by one step per call, with its update compiled once into a GoMLX
// graph. Run is the loop: step budget, log cadence, divergence checks,
// progress and interruption; it knows nothing of a particular trainer and
// nothing of files. Evaluator computes the metrics the loop logs and that
// `flatmin inspect` prints, from one function.
package trainers
