// Package trainers owns how Θ moves and the one loop every trainer shares.
//
// A Trainer advances an explicit State (step, Θ, RNG state, the trainer's own
// scalars) with its update compiled once into GoMLX graphs. Under the Θ
// engine the State holds Θ; under the feature engine it holds Θ₀ and the
// features Zᵀ = ΘXᵀ, which is all the loss and Tr D²L depend on, and forms Θ
// only when asked (Sync, StreamTheta). Gradient-type trainers run several
// steps per compiled call (Advance), drawing their noise from a
// counter-based generator so that fusing changes no result. On SimpleGo, gd,
// labelnoise and sam1 (every size: whole arrays up to 2^20 values, blocks of
// neurons above, which hold nothing m×n beyond the params) and the feature
// engine's riemannian and sam step on the host instead (Go loops and gonum,
// the same formulas and the same draws; hostgd.go, flow.go, hostsam.go), where
// SimpleGo's per-op overheads and generic kernels cost more than the
// arithmetic, and its m×n temporaries more than the memory; the graphs stay the
// reference and the XLA path. Run is the loop:
// step budget, log cadence, divergence checks, progress and interruption; it
// knows nothing of a particular trainer and nothing of files. Evaluator
// computes the metrics the loop logs and that `flatmin inspect` prints, from
// one function.
package trainers
