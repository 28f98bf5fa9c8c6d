// Package regularizers owns the sharpness measures of docs/MATH.md (§3): the exact trace
// of the loss Hessian Tr D²L in closed form (valid on and off the manifold of
// zero loss, for any w and any row norms), its value on the manifold, its
// gradient through GoMLX autodiff and in closed form (also on the host, for
// model.HostForward), and Hutchinson's estimator of Tr H: for
// any loss built from a parameter node (Hutchinson, by double autodiff), and
// for the network's loss from the model's structure (HutchinsonTraceHessian,
// one batched product with the probes), both from the same probes.
package regularizers
