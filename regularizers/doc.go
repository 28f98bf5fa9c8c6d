// Package regularizers owns the sharpness measures of docs/MATH.md (§3): the exact trace
// of the loss Hessian Tr D²L in closed form (valid on and off the manifold of
// zero loss, for any w and any row norms), its value on the manifold, its
// gradient through GoMLX autodiff and in closed form (also on the host over
// blocks of neurons, TraceHost), the curvature bounds that choose step sizes,
// and Hutchinson's estimator of Tr H: for
// any loss built from a parameter node (Hutchinson, by double autodiff), and
// for the network's loss from the model's structure (HutchinsonTraceHessian,
// one batched product with the probes), both from the same probes.
//
// The spectrum of a symmetric operator given by its products (HVP; for the
// network, NetHessianVectorProduct, O(nmd) a vector): its extreme eigenvalues
// by power iteration (TopEigenvalue) or by Lanczos with full
// reorthogonalization (LanczosEigen: top k, smallest, vectors), its spectral
// density by stochastic Lanczos quadrature (SpectralDensity), and its trace
// by Hutch++ (HutchPlusPlus). The iterations run on the host; the products
// are GoMLX graph calls.
package regularizers
