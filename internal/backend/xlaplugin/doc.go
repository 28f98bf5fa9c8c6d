// Package xlaplugin registers GoMLX's XLA backend with package backend when
// it is compiled in (not with -tags noxla, nor where go-xla has no build):
// the app imports it for its side effect, so that the library packages, which
// open no backend of their own choosing, do not link XLA (and their tests link
// in seconds). It never downloads a PJRT plugin.
package xlaplugin

// xlaCompiledIn reports whether this build registers XLA (xla.go's init sets it).
var xlaCompiledIn bool
