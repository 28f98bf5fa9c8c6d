// Package model owns the two-layer network of docs/MATH.md (§2): activations (φ, its
// first three derivatives, φ⁻¹ and the theory's constants), the problem (data
// X, labels y, fixed second-layer weights w), the network's graph functions
// (features Z = XΘᵀ, outputs f = φ(Z)w, the loss L = Σ(f−y)²) and the
// structured Jacobian products Jv, Jᵀc and JJᵀ that never form J, in Θ's
// layout or the features' (Forward.Direction); HostNet and the Host*
// functions evaluate the same from blocks of the features Zᵀ on the host (the
// CPU fast path; the moves in host_moves.go). Each formula has one graph home
// here and at most one host home (docs/MATH.md §9). It also
// generates the paper's synthetic data and loads users' .npy and CSV files.
//
// Graph functions accept Θ of shape [m, d] or a batch [K, m, d]; outputs then
// carry the same leading axis (Z is [n, m] or [K, n, m]).
package model
