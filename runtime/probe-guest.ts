/**
 * The accelerator probe's guest (runtime/probe/probe-guest.S, assembled):
 * multiboot image that enters long mode, touches memory, runs a 10^8-iteration
 * loop, writes S/L/M/C markers to COM1 and exits QEMU through isa-debug-exit
 * with status 67. It proves guest code actually runs at a usable speed.
 */
export const PROBE_GUEST_BASE64 =
  'ArCtGwAAAQD+T1HkAAAQAAAAEAAAAAAAAAAAACAAEABmuvgDsFPuvwAQEAAxwLkADAAA86vHBQAQEAADIBAAxwUAIBAAAzAQAL8AMBAAuIMAAAC5AAIAAIkHBQAAIACDxwji9A8g4IPIIA8i4LgAEBAADyLYuYAAAMAPMg0AAQAADzAPIMANAAAAgA8iwA8BFfAAEADqnAAQAAgAZrr4A7BM7kjHxwAAAAFIiT9IgccAEAAASIH/AAAAAnLtsE3uSMfBAOH1BUgByEj/yXX4sEPusAruZrr0ALAh7vTr/ZAAAAAAAAAAAP//AAAAmq8ADwDgABAA';

export function probeGuestImage(): Buffer {
  return Buffer.from(PROBE_GUEST_BASE64, 'base64');
}

/** QEMU's exit status when the guest writes 0x21 to isa-debug-exit. */
export const PROBE_EXIT_STATUS = (0x21 << 1) | 1;

/** Markers in order: [marker, what seeing it proves, what not seeing it means the guest failed to do]. */
export const PROBE_MARKERS: Array<[string, string, string]> = [
  ['S', 'the guest started', 'start'],
  ['L', 'entered long mode', 'enter long mode'],
  ['M', 'touched 16 MiB', 'touch 16 MiB'],
  ['C', 'ran its 10^8-iteration loop', 'finish its 10^8-iteration loop'],
];
