/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78) without the initial
 * and final inversion, like e2fsprogs' ext2fs_crc32c_le(): ext4 metadata
 * checksums chain it from a seed (node:zlib only has the IEEE CRC32).
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32cRaw(crc: number, data: Uint8Array): number {
  let c = crc >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}
