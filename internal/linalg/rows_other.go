//go:build !amd64

package linalg

const useVector = false

func combo32(dst, s *float64, ss int, b *float64, bs, k int) { panic("unreachable") }
func combo16(dst, s *float64, ss int, b *float64, bs, k int) { panic("unreachable") }
func combo4(dst, s *float64, ss int, b *float64, bs, k int)  { panic("unreachable") }
