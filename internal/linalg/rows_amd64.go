//go:build amd64 && !noasm

package linalg

import "golang.org/x/sys/cpu"

// useVector: the AVX2 and FMA kernels of rows_amd64.s (the same bits as the
// scalar loop in combo, which also uses fused multiply-adds).
var useVector = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// useWide: the AVX-512 two-row kernel combo2x32 (the same bits again).
var useWide = useVector && cpu.X86.HasAVX512F

// combo32, combo16 and combo4 are combo for 32, 16 and 4 columns at dst.
//
//go:noescape
func combo32(dst, s *float64, ss int, b *float64, bs, k int)

//go:noescape
func combo16(dst, s *float64, ss int, b *float64, bs, k int)

//go:noescape
func combo4(dst, s *float64, ss int, b *float64, bs, k int)

//go:noescape
func combo2x32(d0, d1, s0, s1 *float64, ss int, b *float64, bs, k int)
