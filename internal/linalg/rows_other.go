//go:build !amd64 || noasm

package linalg

const useVector, useWide = false, false

func combo32(dst, s *float64, ss int, b *float64, bs, k int) { panic("unreachable") }
func combo16(dst, s *float64, ss int, b *float64, bs, k int) { panic("unreachable") }
func combo4(dst, s *float64, ss int, b *float64, bs, k int)  { panic("unreachable") }
func combo2x32(d0, d1, s0, s1 *float64, ss int, b *float64, bs, k int) {
	panic("unreachable")
}
