/*
 * The accelerator probe's guest: a multiboot (a.out kludge) image, 32-bit
 * entry. It writes a marker to COM1 at each stage, enters long mode the way a
 * kernel's decompressor does, touches 16 MiB, runs a 10^8-iteration loop
 * (~0.1 s on hardware virtualization, ~0.5 s under TCG) and leaves through
 * isa-debug-exit (QEMU exits with (0x21 << 1) | 1 = 67).
 * Markers: S = started, L = long mode, M = memory touched, C = loop done.
 * Built with: as --32 -o p.o probe-guest.S && objcopy -O binary p.o p.bin
 * (runtime/probe-guest.ts embeds the bytes).
 */
	.set BASE, 0x100000
	.text
	.code32
	.globl _start
_start:
	.long 0x1BADB002                /* multiboot magic */
	.long 0x00010000                /* flags: address fields valid */
	.long -(0x1BADB002 + 0x00010000)
	.long BASE                      /* header_addr */
	.long BASE                      /* load_addr */
	.long 0                         /* load_end_addr: whole file */
	.long 0                         /* bss_end_addr */
	.long BASE + (entry32 - _start) /* entry_addr */
entry32:
	mov $0x3f8, %dx
	mov $'S', %al
	out %al, %dx
	/* PML4 0x101000 -> PDPT 0x102000 -> PD 0x103000: 1 GiB identity map, 2 MiB pages */
	mov $0x101000, %edi
	xor %eax, %eax
	mov $3072, %ecx
	rep stosl
	movl $0x102003, 0x101000
	movl $0x103003, 0x102000
	mov $0x103000, %edi
	mov $0x83, %eax
	mov $512, %ecx
1:	mov %eax, (%edi)
	add $0x200000, %eax
	add $8, %edi
	loop 1b
	mov %cr4, %eax
	or $0x20, %eax                  /* PAE */
	mov %eax, %cr4
	mov $0x101000, %eax
	mov %eax, %cr3
	mov $0xC0000080, %ecx           /* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000000, %eax            /* PG */
	mov %eax, %cr0
	lgdt BASE + (gdtr - _start)
	ljmp $0x08, $(BASE + (entry64 - _start))
	.code64
entry64:
	mov $0x3f8, %dx
	mov $'L', %al
	out %al, %dx
	mov $0x1000000, %rdi            /* touch 16 MiB from 16 MiB, one write per page */
2:	movq %rdi, (%rdi)
	add $4096, %rdi
	cmp $0x2000000, %rdi
	jb 2b
	mov $'M', %al
	out %al, %dx
	mov $100000000, %rcx
3:	add %rcx, %rax
	dec %rcx
	jnz 3b
	mov $'C', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	mov $0xf4, %dx                  /* isa-debug-exit */
	mov $0x21, %al
	out %al, %dx
4:	hlt
	jmp 4b
	.align 8
gdt:
	.quad 0
	.quad 0x00AF9A000000FFFF        /* 64-bit code segment */
gdtr:
	.word 15
	.long BASE + (gdt - _start)
