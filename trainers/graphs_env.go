package trainers

import "os"

// GraphsEnv names the environment variable that, set to 1, keeps every
// trainer and estimator in compiled graphs also where SimpleGo would compute
// on the host: the same as --graphs. CI reruns the numerical tests under it,
// as gonum reruns its kernels under the noasm tag, so that the graphs (the
// reference and the XLA path) stay tested where the host paths are the
// default.
const GraphsEnv = "FLATMIN_GRAPHS"

// GraphsForced reports whether $FLATMIN_GRAPHS asks for the graphs.
func GraphsForced() bool { return os.Getenv(GraphsEnv) == "1" }
