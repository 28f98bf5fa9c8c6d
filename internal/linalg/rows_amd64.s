#include "textflag.h"

// dst[c] += Σ_{t<k} s[t·ss] · b[t·bs + c], one accumulator lane per column,
// summed over t in order by VFMADD231PD (one rounding per step, as math.FMA).

// func combo32(dst, s *float64, ss int, b *float64, bs, k int)
TEXT ·combo32(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ ss+16(FP), R8
	MOVQ b+24(FP), DX
	MOVQ bs+32(FP), R9
	MOVQ k+40(FP), CX
	SHLQ $3, R8
	SHLQ $3, R9
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	VMOVUPD 64(DI), Y2
	VMOVUPD 96(DI), Y3
	VMOVUPD 128(DI), Y4
	VMOVUPD 160(DI), Y5
	VMOVUPD 192(DI), Y6
	VMOVUPD 224(DI), Y7
	TESTQ CX, CX
	JE combo32_done
combo32_loop:
	VBROADCASTSD (SI), Y8
	VFMADD231PD (DX), Y8, Y0
	VFMADD231PD 32(DX), Y8, Y1
	VFMADD231PD 64(DX), Y8, Y2
	VFMADD231PD 96(DX), Y8, Y3
	VFMADD231PD 128(DX), Y8, Y4
	VFMADD231PD 160(DX), Y8, Y5
	VFMADD231PD 192(DX), Y8, Y6
	VFMADD231PD 224(DX), Y8, Y7
	ADDQ R8, SI
	ADDQ R9, DX
	DECQ CX
	JNZ combo32_loop
combo32_done:
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	VMOVUPD Y2, 64(DI)
	VMOVUPD Y3, 96(DI)
	VMOVUPD Y4, 128(DI)
	VMOVUPD Y5, 160(DI)
	VMOVUPD Y6, 192(DI)
	VMOVUPD Y7, 224(DI)
	VZEROUPPER
	RET

// func combo16(dst, s *float64, ss int, b *float64, bs, k int)
TEXT ·combo16(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ ss+16(FP), R8
	MOVQ b+24(FP), DX
	MOVQ bs+32(FP), R9
	MOVQ k+40(FP), CX
	SHLQ $3, R8
	SHLQ $3, R9
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	VMOVUPD 64(DI), Y2
	VMOVUPD 96(DI), Y3
	TESTQ CX, CX
	JE combo16_done
combo16_loop:
	VBROADCASTSD (SI), Y8
	VFMADD231PD (DX), Y8, Y0
	VFMADD231PD 32(DX), Y8, Y1
	VFMADD231PD 64(DX), Y8, Y2
	VFMADD231PD 96(DX), Y8, Y3
	ADDQ R8, SI
	ADDQ R9, DX
	DECQ CX
	JNZ combo16_loop
combo16_done:
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	VMOVUPD Y2, 64(DI)
	VMOVUPD Y3, 96(DI)
	VZEROUPPER
	RET

// func combo4(dst, s *float64, ss int, b *float64, bs, k int)
TEXT ·combo4(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ ss+16(FP), R8
	MOVQ b+24(FP), DX
	MOVQ bs+32(FP), R9
	MOVQ k+40(FP), CX
	SHLQ $3, R8
	SHLQ $3, R9
	VMOVUPD (DI), Y0
	TESTQ CX, CX
	JE combo4_done
combo4_loop:
	VBROADCASTSD (SI), Y8
	VFMADD231PD (DX), Y8, Y0
	ADDQ R8, SI
	ADDQ R9, DX
	DECQ CX
	JNZ combo4_loop
combo4_done:
	VMOVUPD Y0, (DI)
	VZEROUPPER
	RET
